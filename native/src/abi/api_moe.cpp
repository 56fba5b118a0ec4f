// Operation 8: the MoE layer.
#include <cmath>

#include "abi/guard.h"
#include "abi/operands.h"

using namespace megamoe;

namespace {

MoeLayerSpec check_config(const megamoe_moe_config_t* config) {
  if (config == nullptr) invalid("config", "is NULL");
  const megamoe_moe_config_t& c = *config;
  if (c.struct_size != sizeof(megamoe_moe_config_t)) {
    invalid("config", "struct_size is ", c.struct_size, "; expected sizeof(megamoe_moe_config_t) = ",
            sizeof(megamoe_moe_config_t), " (mismatched headers?)");
  }
  constexpr uint32_t kKnown =
      MEGAMOE_MOE_W13_INTERLEAVED | MEGAMOE_MOE_EXPERT_SPECIALIZATION_UP | MEGAMOE_MOE_EXPERT_SPECIALIZATION_DOWN;
  if ((c.flags & ~kKnown) != 0) {
    invalid("config", "flags has unknown bits 0x", std::hex, c.flags & ~kKnown);
  }
  if (c.num_experts < 1 || c.num_experts > kMaxExperts) {
    invalid("config", "num_experts is ", c.num_experts, "; expected 1 to ", kMaxExperts);
  }
  if (c.top_k < 1 || c.top_k > kMaxTopK) invalid("config", "top_k is ", c.top_k, "; expected 1 to ", kMaxTopK);
  if (c.hidden <= 0 || c.hidden % 128 != 0) {
    invalid("config", "hidden (H) is ", c.hidden, "; it must be a positive multiple of 128");
  }
  if (c.intermediate <= 0 || c.intermediate % 128 != 0) {
    invalid("config", "intermediate (I) is ", c.intermediate, "; it must be a positive multiple of 128");
  }
  if (c.max_tokens < 1 || c.max_tokens > (int64_t{1} << 31)) {
    invalid("config", "max_tokens is ", c.max_tokens, "; expected 1 to 2^31");
  }
  if (!std::isfinite(c.activation_alpha)) invalid("config", "activation_alpha is not finite");
  if (!std::isfinite(c.activation_beta)) invalid("config", "activation_beta is not finite");
  if (!std::isfinite(c.activation_clamp) || c.activation_clamp < 0.0f) {
    invalid("config", "activation_clamp is ", c.activation_clamp, "; expected 0 (off) or a positive finite value");
  }
  if (!std::isfinite(c.routed_scaling_factor)) invalid("config", "routed_scaling_factor is not finite");

  MoeLayerSpec spec;
  spec.num_experts = c.num_experts;
  spec.top_k = c.top_k;
  spec.hidden = c.hidden;
  spec.intermediate = c.intermediate;
  spec.max_tokens = c.max_tokens;
  spec.activation = ActivationSpec{c.activation_alpha, c.activation_beta, c.activation_clamp};
  spec.routed_scaling_factor = c.routed_scaling_factor;
  spec.w13_interleaved = (c.flags & MEGAMOE_MOE_W13_INTERLEAVED) != 0;
  spec.expert_specialization_up = (c.flags & MEGAMOE_MOE_EXPERT_SPECIALIZATION_UP) != 0;
  spec.expert_specialization_down = (c.flags & MEGAMOE_MOE_EXPERT_SPECIALIZATION_DOWN) != 0;
  spec.progress = c.progress;
  spec.progress_user_data = c.progress_user_data;
  return spec;
}

// One projection's weights [E, rows, cols]: FP8 with scales, or BF16/FP32 without.
void check_projection(const TensorChecker& check, const char* name, const char* scales_name,
                      const megamoe_tensor_t* w, const megamoe_tensor_t* w_scales, int64_t experts, int64_t rows,
                      int64_t cols, const char* layout, const char* scales_layout, Tensor& out_w,
                      std::optional<Tensor>& out_scales) {
  out_w = check.tensor(name, w, {MEGAMOE_DTYPE_FP8_E4M3, MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}, layout);
  expect_dim(name, out_w, 0, experts, "config.num_experts");
  expect_dim(name, out_w, 1, rows, layout);
  expect_dim(name, out_w, 2, cols, layout);
  if (out_w.dtype == MEGAMOE_DTYPE_FP8_E4M3) {
    if (w_scales == nullptr) invalid(scales_name, "is NULL but '", name, "' is FP8; expected ", scales_layout);
    out_scales = check.tensor(scales_name, w_scales, {MEGAMOE_DTYPE_FP32}, scales_layout);
    expect_dim(scales_name, *out_scales, 0, experts, "config.num_experts");
    expect_dim(scales_name, *out_scales, 1, rows / 128, scales_layout);
    expect_dim(scales_name, *out_scales, 2, cols / 128, scales_layout);
  } else if (w_scales != nullptr) {
    invalid(scales_name, "must be NULL when '", name, "' is ", dtype_name(out_w.dtype),
            " (the library quantizes it)");
  }
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
    const TensorChecker check(ctx.backend->device());
    MoeWeights weights;
    check_projection(check, "w13", "w13_scales", w13, w13_scales, spec.num_experts, 2 * spec.intermediate,
                     spec.hidden, "[E, 2I, H]", "[E, 2I/128, H/128]", weights.w13, weights.w13_scales);
    check_projection(check, "w2", "w2_scales", w2, w2_scales, spec.num_experts, spec.hidden, spec.intermediate,
                     "[E, H, I]", "[E, H/128, I/128]", weights.w2, weights.w2_scales);
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
    MoeForwardArgs args;
    args.x = check.tensor("x", x, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP8_E4M3}, "[T, H]");
    const int64_t tokens = args.x.shape[0];
    expect_dim("x", args.x, 1, spec.hidden, "H, config.hidden");
    if (tokens > spec.max_tokens) {
      invalid("x", "has ", tokens, " tokens; the layer was created for at most config.max_tokens = ",
              spec.max_tokens);
    }
    if (args.x.dtype == MEGAMOE_DTYPE_FP8_E4M3) {
      args.x_scales = check.tensor("x_scales", x_scales, {MEGAMOE_DTYPE_FP32}, "[T, H/128]");
      expect_dim("x_scales", *args.x_scales, 0, tokens, "T, the rows of 'x'");
      expect_dim("x_scales", *args.x_scales, 1, spec.hidden / 128, "H / 128");
    } else if (x_scales != nullptr) {
      invalid("x_scales", "must be NULL when 'x' is BF16 (the layer quantizes it)");
    }
    args.topk_idx = check.tensor("topk_idx", topk_idx, {MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64}, "[T, top_k]");
    expect_dim("topk_idx", args.topk_idx, 0, tokens, "T, the rows of 'x'");
    expect_dim("topk_idx", args.topk_idx, 1, spec.top_k, "config.top_k");
    args.topk_weights = check.tensor("topk_weights", topk_weights, {MEGAMOE_DTYPE_FP32}, "[T, top_k]");
    expect_dim("topk_weights", args.topk_weights, 0, tokens, "T, the rows of 'x'");
    expect_dim("topk_weights", args.topk_weights, 1, spec.top_k, "config.top_k");
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
