// Shape checks shared by the GEMM entry points (dense, grouped, routed), the MoE layer and the
// expert-parallel entry points.
#pragma once

#include <cmath>

#include "abi/checks.h"
#include "abi/handles.h"
#include "core/backend.h"

namespace megamoe {

struct CallContext {
  Backend& backend;
  TensorChecker check;
};

inline CallContext enter(megamoe_context_t context) {
  auto& ctx = require_handle(context, "context");
  return CallContext{*ctx.backend, TensorChecker(ctx.backend->device())};
}

// FP8 activations `a` [rows..., K] with scales [rows..., K/128]; `layout` names a's dims.
ScaledTensor check_activations(const TensorChecker& check, const megamoe_tensor_t* a,
                               const megamoe_tensor_t* a_scales, const char* layout, const char* scales_layout);

// FP8 weights b [E, N, K] (or [N, K] when `grouped` is false) with scales [E, N/128, K/128];
// N and K positive multiples of 128, K equal to `k`.
ScaledTensor check_weights(const TensorChecker& check, const megamoe_tensor_t* b, const megamoe_tensor_t* b_scales,
                           bool grouped, int64_t k);

// ---- Layer configurations: megamoe_moe_config_t and megamoe_ep_config_t share these fields by name.

template <typename Config>
const Config& check_config_size(const Config* config, const char* type_name) {
  if (config == nullptr) invalid("config", "is NULL");
  if (config->struct_size != sizeof(Config)) {
    invalid("config", "struct_size is ", config->struct_size, "; expected sizeof(", type_name, ") = ", sizeof(Config),
            " (mismatched headers?)");
  }
  return *config;
}

// num_experts, top_k and hidden.
template <typename Config>
void check_shape_fields(const Config& c) {
  if (c.num_experts < 1 || c.num_experts > kMaxExperts) {
    invalid("config", "num_experts is ", c.num_experts, "; expected 1 to ", kMaxExperts);
  }
  if (c.top_k < 1 || c.top_k > kMaxTopK) invalid("config", "top_k is ", c.top_k, "; expected 1 to ", kMaxTopK);
  if (c.hidden <= 0 || c.hidden % 128 != 0) {
    invalid("config", "hidden (H) is ", c.hidden, "; it must be a positive multiple of 128");
  }
}

// What a layer adds: intermediate, the activation and the routed scaling factor. Returns the layer spec
// for `experts` experts and `max_tokens` tokens (the caller checked those), with the MEGAMOE_MOE_* flags.
template <typename Config>
MoeLayerSpec check_layer_fields(const Config& c, int32_t experts, int64_t max_tokens) {
  if (c.intermediate <= 0 || c.intermediate % 128 != 0) {
    invalid("config", "intermediate (I) is ", c.intermediate, "; it must be a positive multiple of 128");
  }
  if (!std::isfinite(c.activation_alpha)) invalid("config", "activation_alpha is not finite");
  if (!std::isfinite(c.activation_beta)) invalid("config", "activation_beta is not finite");
  if (!std::isfinite(c.activation_clamp) || c.activation_clamp < 0.0f) {
    invalid("config", "activation_clamp is ", c.activation_clamp, "; expected 0 (off) or a positive finite value");
  }
  if (!std::isfinite(c.routed_scaling_factor)) invalid("config", "routed_scaling_factor is not finite");

  MoeLayerSpec spec;
  spec.num_experts = experts;
  spec.top_k = c.top_k;
  spec.hidden = c.hidden;
  spec.intermediate = c.intermediate;
  spec.max_tokens = max_tokens;
  spec.activation = ActivationSpec{c.activation_alpha, c.activation_beta, c.activation_clamp};
  spec.routed_scaling_factor = c.routed_scaling_factor;
  spec.w13_interleaved = (c.flags & MEGAMOE_MOE_W13_INTERLEAVED) != 0;
  spec.expert_specialization_up = (c.flags & MEGAMOE_MOE_EXPERT_SPECIALIZATION_UP) != 0;
  spec.expert_specialization_down = (c.flags & MEGAMOE_MOE_EXPERT_SPECIALIZATION_DOWN) != 0;
  spec.progress = c.progress;
  spec.progress_user_data = c.progress_user_data;
  return spec;
}

constexpr uint32_t kMoeLayerFlags =
    MEGAMOE_MOE_W13_INTERLEAVED | MEGAMOE_MOE_EXPERT_SPECIALIZATION_UP | MEGAMOE_MOE_EXPERT_SPECIALIZATION_DOWN;

// A layer's weights, FP8 with scales or BF16/FP32 without: w13 [E, 2I, H], w2 [E, H, I] with
// E = spec.num_experts, which `experts_meaning` names ("config.num_experts").
MoeWeights check_moe_weights(const TensorChecker& check, const MoeLayerSpec& spec, const char* experts_meaning,
                             const megamoe_tensor_t* w13, const megamoe_tensor_t* w13_scales,
                             const megamoe_tensor_t* w2, const megamoe_tensor_t* w2_scales);

// A batch of tokens of a layer or dispatch: x [T, H] BF16, or FP8 with x_scales [T, H/128]; topk_idx
// [T, top_k] INT32 or INT64; topk_weights [T, top_k] FP32; T <= max_tokens, which `limit` names
// ("the layer was created for at most config.max_tokens").
struct TokenArgs {
  Tensor x;
  std::optional<Tensor> x_scales;
  Tensor topk_idx;
  Tensor topk_weights;
};
TokenArgs check_tokens(const TensorChecker& check, const megamoe_tensor_t* x, const megamoe_tensor_t* x_scales,
                       const megamoe_tensor_t* topk_idx, const megamoe_tensor_t* topk_weights, int64_t hidden,
                       int32_t top_k, int64_t max_tokens, const char* limit);

}  // namespace megamoe
