#include "ep/layer.h"

#include "ep/agreement.h"

namespace megamoe::ep {

Layer::Layer(std::unique_ptr<Exchange> exchange, std::unique_ptr<MoeLayer> local, const EpSpec& spec)
    : exchange_(std::move(exchange)), local_(std::move(local)), spec_(spec) {
  const auto& backend = exchange_->comm().backend();
  const EpGeometry& g = exchange_->geometry();
  const int64_t rows = g.max_received();
  x_ = BackendBuffer(backend, rows * g.hidden);
  x_scales_ = BackendBuffer(backend, 4 * rows * g.scale_count());
  topk_idx_ = BackendBuffer(backend, 4 * rows * g.top_k);
  topk_weights_ = BackendBuffer(backend, 4 * rows * g.top_k);
  num_tokens_ = BackendBuffer(backend, 4);
  partial_ = BackendBuffer(backend, 4 * rows * g.hidden);
  if (spec.record_timings) {
    for (auto& mark : marks_) mark = backend->create_event(true);
  }
}

std::unique_ptr<Layer> Layer::create(std::shared_ptr<Communicator> comm, const EpSpec& spec,
                                     const MoeWeights& weights, const std::optional<Error>& own, void* stream) {
  return create_collectively<Layer>(comm, ObjectKind::kLayer, spec, own, stream, [&](std::unique_ptr<Exchange> exchange) {
    auto local = exchange->backend().create_moe_layer(spec.local, weights, stream);
    return std::unique_ptr<Layer>(new Layer(std::move(exchange), std::move(local), spec));
  });
}

void Layer::forward(const LayerForwardArgs* args, std::optional<Error> own, void* stream) {
  std::lock_guard<std::mutex> sequence(exchange_->comm().sequence_mutex());
  std::lock_guard<std::mutex> lock(mutex_);
  Backend& backend = exchange_->backend();
  const EpGeometry& g = exchange_->geometry();
  const int64_t rows = g.max_received();
  const auto mark = [&](int i) {
    if (spec_.record_timings) marks_[i]->record(stream);
  };
  timed_ = false;

  mark(0);
  own = exchange_->dispatch(args ? &args->batch : nullptr, own, stream);
  const std::optional<Error> failure = attempt([&] {
    EpUnpackArgs unpack;
    unpack.geometry = g;
    unpack.recv = exchange_->received();
    unpack.x = {tensor_view(x_.as<void>(), MEGAMOE_DTYPE_FP8_E4M3, {rows, g.hidden}),
                tensor_view(x_scales_.as<void>(), MEGAMOE_DTYPE_FP32, {rows, g.scale_count()})};
    unpack.topk_idx = tensor_view(topk_idx_.as<void>(), MEGAMOE_DTYPE_INT32, {rows, g.top_k});
    unpack.topk_weights = tensor_view(topk_weights_.as<void>(), MEGAMOE_DTYPE_FP32, {rows, g.top_k});
    unpack.num_tokens = tensor_view(num_tokens_.as<void>(), MEGAMOE_DTYPE_INT32, {1});
    unpack.source_offsets = exchange_->source_offsets();
    backend.ep_unpack(unpack, stream);
    mark(1);

    MoeForwardArgs compute;
    compute.x = unpack.x.data;
    compute.x_scales = unpack.x.scales;
    compute.topk_idx = unpack.topk_idx;
    compute.topk_weights = unpack.topk_weights;
    compute.y = tensor_view(partial_.as<void>(), MEGAMOE_DTYPE_FP32, {rows, g.hidden});
    compute.num_tokens = unpack.num_tokens;
    // Counts are an output of this rank's call: left alone when the call fails.
    if (!own && args->expert_counts) compute.expert_counts = args->expert_counts;
    local_->forward(compute, stream);
    mark(2);
  });

  EpReturnArgs give;
  give.status = failure ? failure->status() : MEGAMOE_SUCCESS;
  give.partial = tensor_view(partial_.as<void>(), MEGAMOE_DTYPE_FP32, {rows, g.hidden});
  exchange_->give_back(give, stream);
  if (own) throw *own;
  if (failure) throw *failure;
  exchange_->combine(args->y, stream);
  mark(3);
  timed_ = spec_.record_timings;
}

Timings Layer::timings() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!spec_.record_timings) {
    invalid("layer", "was created without MEGAMOE_EP_RECORD_TIMINGS in config.flags, so it keeps no timings");
  }
  if (!timed_) invalid("layer", "has no timings yet: no forward has succeeded since its creation or its last failure");
  return Timings{marks_[1]->elapsed_ms(*marks_[0]), marks_[2]->elapsed_ms(*marks_[1]),
                 marks_[3]->elapsed_ms(*marks_[2])};
}

}  // namespace megamoe::ep
