// Operation 8: the MoE layer.
#include "abi/guard.h"
#include "abi/operands.h"

using namespace megamoe;

namespace {

MoeLayerSpec check_config(const megamoe_moe_config_t* config) {
  const megamoe_moe_config_t& c = check_config_size(config, "megamoe_moe_config_t");
  if ((c.flags & ~kMoeLayerFlags) != 0) invalid("config", "flags has unknown bits 0x", std::hex, c.flags & ~kMoeLayerFlags);
  check_shape_fields(c);
  if (c.max_tokens < 1 || c.max_tokens > kMaxTokens) {
    invalid("config", "max_tokens is ", c.max_tokens, "; expected 1 to 2^31");
  }
  return check_layer_fields(c, c.num_experts, c.max_tokens);
}

}  // namespace

extern "C" {

MEGAMOE_API megamoe_status_t megamoe_moe_layer_create(megamoe_context_t context, const megamoe_moe_config_t* config,
                                                      const megamoe_tensor_t* w13,
                                                      const megamoe_tensor_t* w13_scales, const megamoe_tensor_t* w2,
                                                      const megamoe_tensor_t* w2_scales, void* stream,
                                                      megamoe_moe_layer_t* out_layer) {
  return guarded(__func__, [&] {
    auto& ctx = require_handle(context, "context");
    auto& out = require_out(out_layer, "out_layer");
    const MoeLayerSpec spec = check_config(config);
    const MoeWeights weights = check_moe_weights(TensorChecker(ctx.backend->device()), spec, "config.num_experts",
                                                 w13, w13_scales, w2, w2_scales);
    auto layer = std::make_unique<megamoe_moe_layer>();
    layer->backend = ctx.backend;
    layer->spec = spec;
    layer->impl = ctx.backend->create_moe_layer(spec, weights, stream);
    out = publish(std::move(layer));
  });
}

MEGAMOE_API megamoe_status_t megamoe_moe_layer_destroy(megamoe_moe_layer_t layer) {
  return guarded(__func__, [&] {
    destroy_handle(layer, "layer");
  });
}

MEGAMOE_API megamoe_status_t megamoe_moe_layer_get_workspace_size(megamoe_moe_layer_t layer, int64_t* out_bytes) {
  return guarded(__func__, [&] {
    auto& l = require_handle(layer, "layer");
    require_out(out_bytes, "out_bytes") = l.impl->workspace_bytes();
  });
}

MEGAMOE_API megamoe_status_t megamoe_moe_layer_forward(megamoe_moe_layer_t layer, const megamoe_tensor_t* x,
                                                       const megamoe_tensor_t* x_scales,
                                                       const megamoe_tensor_t* topk_idx,
                                                       const megamoe_tensor_t* topk_weights,
                                                       const megamoe_tensor_t* y,
                                                       const megamoe_tensor_t* expert_counts,
                                                       const megamoe_tensor_t* num_tokens, void* stream) {
  return guarded(__func__, [&] {
    auto& l = require_handle(layer, "layer");
    const MoeLayerSpec& spec = l.spec;
    const TensorChecker check(l.backend->device());
    const TokenArgs batch = check_tokens(check, x, x_scales, topk_idx, topk_weights, spec.hidden, spec.top_k,
                                         spec.max_tokens, "the layer was created for at most config.max_tokens");
    const int64_t tokens = batch.x.shape[0];
    MoeForwardArgs args;
    args.x = batch.x;
    args.x_scales = batch.x_scales;
    args.topk_idx = batch.topk_idx;
    args.topk_weights = batch.topk_weights;
    args.y = check.tensor("y", y, {MEGAMOE_DTYPE_BF16}, "[T, H]");
    expect_dim("y", args.y, 0, tokens, "T, the rows of 'x'");
    expect_dim("y", args.y, 1, spec.hidden, "H, config.hidden");
    args.expert_counts = check.optional_tensor("expert_counts", expert_counts, {MEGAMOE_DTYPE_INT32}, "[E]");
    if (args.expert_counts) expect_dim("expert_counts", *args.expert_counts, 0, spec.num_experts, "config.num_experts");
    args.num_tokens = check.optional_tensor("num_tokens", num_tokens, {MEGAMOE_DTYPE_INT32}, "[1]");
    if (args.num_tokens) expect_dim("num_tokens", *args.num_tokens, 0, 1, "a single count");

    const std::initializer_list<NamedTensor> inputs = {{"x", args.x},
                                                       {"x_scales", args.x_scales},
                                                       {"topk_idx", args.topk_idx},
                                                       {"topk_weights", args.topk_weights},
                                                       {"num_tokens", args.num_tokens}};
    expect_disjoint("y", args.y, inputs);
    if (args.expert_counts) {
      expect_disjoint("expert_counts", *args.expert_counts, inputs);
      expect_disjoint("expert_counts", *args.expert_counts, {{"y", args.y}});
    }
    if (tokens == 0) return;
    std::lock_guard<std::mutex> lock(l.forward_mutex);
    l.impl->forward(args, stream);
  });
}

}  // extern "C"
