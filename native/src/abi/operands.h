// Shape checks shared by the GEMM entry points (dense, grouped, routed) and the MoE layer.
#pragma once

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

}  // namespace megamoe
