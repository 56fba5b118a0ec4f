#include "ep/exchange.h"

namespace megamoe::ep {

Exchange::Exchange(std::shared_ptr<Communicator> comm, const EpSpec& spec)
    : comm_(std::move(comm)),
      geometry_{comm_->world_size(), spec.top_k, spec.hidden, spec.capacity},
      rank_begin_(comm_->backend(), 4 * (int64_t{geometry_.world_size} + 1)),
      send_(comm_->backend(), geometry_.world_size * geometry_.region_bytes()),
      recv_(comm_->backend(), send_.bytes()),
      return_send_(comm_->backend(), geometry_.world_size * geometry_.return_region_bytes()),
      return_recv_(comm_->backend(), return_send_.bytes()),
      pos_(comm_->backend(), 4 * geometry_.capacity * geometry_.world_size),
      source_offsets_(comm_->backend(), rank_begin_.bytes()),
      staged_x_(comm_->backend(), geometry_.capacity * geometry_.hidden),
      staged_scales_(comm_->backend(), 4 * geometry_.capacity * geometry_.scale_count()) {}

void Exchange::set_ranks(const std::vector<int32_t>& rank_begin, uint32_t object, void* stream) {
  backend().write(rank_begin_.as<void>(), rank_begin.data(), rank_begin_.bytes(), stream);
  object_ = object;
}

ScaledTensor Exchange::stage(const TokenBatch& batch, void* stream) {
  if (batch.x_scales) return {batch.x, *batch.x_scales};
  const int64_t tokens = batch.x.dim(0);
  const ScaledTensor staged{
      tensor_view(staged_x_.as<void>(), MEGAMOE_DTYPE_FP8_E4M3, {tokens, geometry_.hidden}),
      tensor_view(staged_scales_.as<void>(), MEGAMOE_DTYPE_FP32, {tokens, geometry_.scale_count()})};
  // As the single-GPU layer quantizes x (docs/NUMERICS.md section 4, step 1).
  backend().quantize_activations(batch.x, staged, false, std::nullopt, stream);
  return staged;
}

void Exchange::pack(const ScaledTensor& x, const Tensor& topk_idx, const Tensor& topk_weights, void* stream) {
  EpPackArgs args;
  args.geometry = geometry_;
  args.rank_begin = rank_begin_.as<int32_t>();
  args.x = x;
  args.topk_idx = topk_idx;
  args.topk_weights = topk_weights;
  args.send = send_.as<void>();
  args.pos = pos_.as<int32_t>();
  backend().ep_pack(args, stream);
}

std::optional<Error> Exchange::dispatch(const TokenBatch* batch, std::optional<Error> own, void* stream) {
  if (!own) own = attempt([&] { pack(stage(*batch, stream), batch->topk_idx, batch->topk_weights, stream); });
  if (own) {
    const int64_t h = geometry_.hidden, k = geometry_.top_k;
    pack({tensor_view(nullptr, MEGAMOE_DTYPE_FP8_E4M3, {0, h}), tensor_view(nullptr, MEGAMOE_DTYPE_FP32, {0, h / 128})},
         tensor_view(nullptr, MEGAMOE_DTYPE_INT32, {0, k}), tensor_view(nullptr, MEGAMOE_DTYPE_FP32, {0, k}), stream);
  }
  comm_->transport().all_to_all(send_.as<void>(), recv_.as<void>(), geometry_.region_bytes(),
                                CollectiveTag{object_, Step::kDispatch}, stream);
  return own;
}

void Exchange::give_back(EpReturnArgs args, void* stream) {
  args.geometry = geometry_;
  args.source_offsets = source_offsets_.as<int32_t>();
  args.send = return_send_.as<void>();
  backend().ep_return(args, stream);
  comm_->transport().all_to_all(return_send_.as<void>(), return_recv_.as<void>(), geometry_.return_region_bytes(),
                                CollectiveTag{object_, Step::kReturn}, stream);
}

void Exchange::combine(const Tensor& y, void* stream) {
  EpCombineArgs args;
  args.geometry = geometry_;
  args.pos = pos_.as<int32_t>();
  args.recv = return_recv_.as<void>();
  args.y = y;
  backend().ep_combine(args, stream);
}

}  // namespace megamoe::ep
