// The exchange buffers of one EP object and the steps around them that dispatchers and layers share
// (docs/EP.md): staging x as FP8, packing and exchanging the dispatch regions, returning results and
// the combine. Every collective step is taken even by a rank whose own part failed, so its peers finish.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/backend_buffer.h"
#include "ep/communicator.h"
#include "ep/spec.h"

namespace megamoe::ep {

class Exchange {
 public:
  // Allocates everything (before the creation handshake, so a failure is reported there).
  Exchange(std::shared_ptr<Communicator> comm, const EpSpec& spec);

  // After the handshake: the ranks' expert ranges, and the number of this object on every rank.
  void set_ranks(const std::vector<int32_t>& rank_begin, uint32_t object, void* stream);

  const EpGeometry& geometry() const { return geometry_; }
  Communicator& comm() const { return *comm_; }
  Backend& backend() const { return *comm_->backend(); }

  // Packs `batch` and exchanges the dispatch regions. A rank with no valid batch (`own` set) sends no
  // records. Returns this rank's failure: `own`, or what packing found (the CPU backend rejects experts
  // outside [-1, E) there, before anything is sent).
  std::optional<Error> dispatch(const TokenBatch* batch, std::optional<Error> own, void* stream);
  // The dispatch regions received by the last dispatch().
  const void* received() const { return recv_.as<void>(); }
  int32_t* source_offsets() const { return source_offsets_.as<int32_t>(); }

  // Sends every peer the rows of its records (`args` without geometry, source offsets and buffers), or
  // only `status` when this rank failed; then exchanges the return regions.
  void give_back(EpReturnArgs args, void* stream);
  // y [T, H] of this rank's last dispatch, from the returned rows.
  void combine(const Tensor& y, void* stream);

 private:
  void pack(const ScaledTensor& x, const Tensor& topk_idx, const Tensor& topk_weights, void* stream);
  ScaledTensor stage(const TokenBatch& batch, void* stream);

  std::shared_ptr<Communicator> comm_;
  EpGeometry geometry_;
  uint32_t object_ = 0;
  BackendBuffer rank_begin_;           // [W + 1]
  BackendBuffer send_, recv_;          // W dispatch regions each
  BackendBuffer return_send_, return_recv_;  // W return regions each
  BackendBuffer pos_;                  // [C, W]
  BackendBuffer source_offsets_;       // [W + 1]
  BackendBuffer staged_x_, staged_scales_;  // x quantized: [C, H] FP8, [C, H/128] FP32
};

}  // namespace megamoe::ep
