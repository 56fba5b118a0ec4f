// The expert-parallel MoE layer (docs/EP.md): quantize -> dispatch -> the single-GPU layer over this
// rank's experts on the received tokens (float32 partial sums) -> return -> combine. With W = 1 it is
// bitwise the single-GPU layer; for W > 1 it differs only in how the float32 sum over a token's slots is
// associated before its one BF16 rounding.
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "ep/exchange.h"

namespace megamoe::ep {

struct Timings {
  double dispatch_ms = 0;  // quantize, pack, exchange, unpack
  double compute_ms = 0;   // the local layer
  double combine_ms = 0;   // return, exchange, combine
};

class Layer {
 public:
  // Collective. `own`: this rank's argument check failed (then `weights` is not read, but the rank
  // still takes part, so every rank gets the same verdict).
  static std::unique_ptr<Layer> create(std::shared_ptr<Communicator> comm, const EpSpec& spec,
                                       const MoeWeights& weights, const std::optional<Error>& own, void* stream);

  Device device() const { return exchange_->backend().device(); }

  // Collective. `args` NULL with `own` set: this rank's arguments are invalid; it still computes and
  // returns its peers' tokens, then throws `own`. Nothing of `args` is written on failure.
  void forward(const LayerForwardArgs* args, std::optional<Error> own, void* stream);

  // Of the last successful forward; throws unless created with record_timings and one has run.
  Timings timings();

 private:
  Layer(std::unique_ptr<Exchange> exchange, std::unique_ptr<MoeLayer> local, const EpSpec& spec);

  std::unique_ptr<Exchange> exchange_;
  std::unique_ptr<MoeLayer> local_;
  EpSpec spec_;
  // The local layer's inputs and output: [R_max, ...] rows, compacted source by source.
  BackendBuffer x_, x_scales_, topk_idx_, topk_weights_, num_tokens_, partial_;
  std::unique_ptr<StreamEvent> marks_[4];  // start, dispatched, computed, combined (record_timings)
  bool timed_ = false;
  std::mutex mutex_;  // one forward at a time: the workspace and the marks are shared
};

}  // namespace megamoe::ep
