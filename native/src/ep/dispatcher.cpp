#include "ep/dispatcher.h"

#include "ep/agreement.h"

namespace megamoe::ep {

Dispatcher::Dispatcher(std::unique_ptr<Exchange> exchange) : exchange_(std::move(exchange)) {
  const EpGeometry& g = exchange_->geometry();
  topk_weights_ = BackendBuffer(exchange_->comm().backend(), 4 * g.max_expanded());
  slot_rows_ = BackendBuffer(exchange_->comm().backend(), 4 * g.max_expanded());
}

std::unique_ptr<Dispatcher> Dispatcher::create(std::shared_ptr<Communicator> comm, const EpSpec& spec,
                                               const std::optional<Error>& own, void* stream) {
  return create_collectively<Dispatcher>(comm, ObjectKind::kDispatcher, spec, own, stream,
                                         [&](std::unique_ptr<Exchange> exchange) {
                                           auto d = std::unique_ptr<Dispatcher>(new Dispatcher(std::move(exchange)));
                                           d->num_local_experts_ = spec.num_local_experts;
                                           return d;
                                         });
}

void Dispatcher::dispatch(const TokenBatch* batch, const DispatchOutputs* compact, const ExpandedOutputs* expanded,
                          std::optional<Error> own, void* stream) {
  std::lock_guard<std::mutex> sequence(exchange_->comm().sequence_mutex());
  std::lock_guard<std::mutex> lock(mutex_);
  held_ = Held::kNothing;
  own = exchange_->dispatch(batch, own, stream);
  if (!own) {
    own = attempt([&] {
      const EpGeometry& g = exchange_->geometry();
      if (compact != nullptr) {
        EpUnpackArgs args;
        args.geometry = g;
        args.recv = exchange_->received();
        args.x = compact->x;
        args.topk_idx = compact->topk_idx;
        args.topk_weights = compact->topk_weights;
        args.num_tokens = compact->num_tokens;
        args.source_offsets = exchange_->source_offsets();
        exchange_->backend().ep_unpack(args, stream);
      } else {
        EpUnpackExpandedArgs args;
        args.geometry = g;
        args.num_local_experts = num_local_experts_;
        args.recv = exchange_->received();
        args.x = expanded->x;
        args.expert_offsets = expanded->expert_offsets;
        args.topk_weights = topk_weights_.as<float>();
        args.slot_rows = slot_rows_.as<int32_t>();
        args.source_offsets = exchange_->source_offsets();
        exchange_->backend().ep_unpack_expanded(args, stream);
      }
    });
  }
  if (own) {
    held_ = Held::kFailed;
    dispatch_failure_ = own;
    throw *own;
  }
  held_ = compact != nullptr ? Held::kCompact : Held::kExpanded;
  tokens_ = batch->x.dim(0);
}

std::optional<Error> Dispatcher::check_combine(const CombineArgs& args) const {
  const EpGeometry& g = exchange_->geometry();
  switch (held_) {
    case Held::kNothing:
      return Error(MEGAMOE_ERROR_INVALID_ARGUMENT,
                   "the dispatcher holds no dispatch to combine (call megamoe_ep_dispatch or "
                   "megamoe_ep_dispatch_expanded first; a combine consumes its dispatch)");
    case Held::kFailed:
      return Error(dispatch_failure_->status(),
                   cat("the last dispatch on this rank failed, so there is nothing to combine: ", dispatch_failure_->what()));
    case Held::kCompact:
    case Held::kExpanded: break;
  }
  const int64_t rows = held_ == Held::kCompact ? g.max_received() : g.max_expanded();
  const char* what = held_ == Held::kCompact ? "max_recv_tokens (one row per received token: megamoe_ep_dispatch)"
                                             : "max_recv_rows_expanded (one row per received slot: "
                                               "megamoe_ep_dispatch_expanded)";
  if (args.partial.dim(0) != rows) {
    return Error(MEGAMOE_ERROR_INVALID_ARGUMENT, cat("argument 'partial': shape[0] is ", args.partial.dim(0),
                                                     "; expected ", rows, " (", what, ")"));
  }
  if (args.y.dim(0) != tokens_) {
    return Error(MEGAMOE_ERROR_INVALID_ARGUMENT, cat("argument 'y': shape[0] is ", args.y.dim(0), "; expected ",
                                                     tokens_, " (T, the tokens of the dispatch being combined)"));
  }
  return std::nullopt;
}

void Dispatcher::combine(const CombineArgs* args, std::optional<Error> own, void* stream) {
  std::lock_guard<std::mutex> sequence(exchange_->comm().sequence_mutex());
  std::lock_guard<std::mutex> lock(mutex_);
  if (!own) own = check_combine(*args);
  const bool expanded = held_ == Held::kExpanded;
  held_ = Held::kNothing;
  EpReturnArgs give;
  if (own) {
    give.status = own->status();
  } else {
    give.partial = args->partial;
    give.slot_rows = expanded ? slot_rows_.as<int32_t>() : nullptr;
    give.topk_weights = expanded ? topk_weights_.as<float>() : nullptr;
  }
  exchange_->give_back(give, stream);
  if (own) throw *own;
  exchange_->combine(args->y, stream);
}

}  // namespace megamoe::ep
