// Dispatch and combine on their own (docs/EP.md), for a framework that runs its own expert compute in
// between: megamoe_ep_dispatch (one row per received token, DeepEP's normal format) or
// megamoe_ep_dispatch_expanded (one row per received (token, local slot), sorted by local expert), then
// megamoe_ep_combine of the results. A dispatcher holds one dispatch until its combine.
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "ep/exchange.h"

namespace megamoe::ep {

class Dispatcher {
 public:
  // Collective; `own` as for Layer::create.
  static std::unique_ptr<Dispatcher> create(std::shared_ptr<Communicator> comm, const EpSpec& spec,
                                            const std::optional<Error>& own, void* stream);

  const EpGeometry& geometry() const { return exchange_->geometry(); }
  Device device() const { return exchange_->backend().device(); }

  // Collective. Exactly one of `compact` / `expanded` names the outputs; `batch` NULL with `own` set:
  // this rank's arguments are invalid (it sends nothing, writes nothing, and throws `own`).
  void dispatch(const TokenBatch* batch, const DispatchOutputs* compact, const ExpandedOutputs* expanded,
                std::optional<Error> own, void* stream);
  // Collective: the results of the last dispatch's rows -> y of its tokens. A rank without a successful
  // dispatch to combine, or with invalid `args`, still takes part (its peers learn that their tokens on
  // this rank are missing) and throws.
  void combine(const CombineArgs* args, std::optional<Error> own, void* stream);

 private:
  enum class Held { kNothing, kCompact, kExpanded, kFailed };

  Dispatcher(std::unique_ptr<Exchange> exchange);
  std::optional<Error> check_combine(const CombineArgs& args) const;

  std::unique_ptr<Exchange> exchange_;
  int32_t num_local_experts_ = 0;
  BackendBuffer topk_weights_, slot_rows_;  // [R_max, k] each, for the combine of an expanded dispatch
  Held held_ = Held::kNothing;
  int64_t tokens_ = 0;               // T of the held dispatch
  std::optional<Error> dispatch_failure_;  // why the last dispatch failed (held_ == kFailed)
  std::mutex mutex_;
};

}  // namespace megamoe::ep
