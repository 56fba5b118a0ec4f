// What an expert-parallel dispatcher or layer is made of, as the C ABI layer validated it, and the
// arguments of its calls (docs/EP.md).
#pragma once

#include <cstdint>
#include <new>
#include <optional>
#include <stdexcept>

#include "core/backend.h"

namespace megamoe::ep {

struct EpSpec {
  int32_t num_experts = 0;  // E, global
  int32_t top_k = 0;
  int64_t hidden = 0;
  int64_t capacity = 0;  // max_tokens_per_rank
  int32_t expert_begin = 0;
  int32_t num_local_experts = 0;
  bool record_timings = false;
  // Layers only: the single-GPU layer over this rank's experts, for W * capacity received tokens.
  MoeLayerSpec local;
};

// A rank's tokens: x [T, H] BF16, or FP8 with x_scales; topk_idx [T, k] with global experts.
struct TokenBatch {
  Tensor x;
  std::optional<Tensor> x_scales;
  Tensor topk_idx;
  Tensor topk_weights;
};

struct LayerForwardArgs {
  TokenBatch batch;
  Tensor y;                              // [T, H] BF16
  std::optional<Tensor> expert_counts;  // [E_local] INT32
};

// Received tokens of megamoe_ep_dispatch: [R_max, ...] each.
struct DispatchOutputs {
  ScaledTensor x;
  Tensor topk_idx;
  Tensor topk_weights;
  Tensor num_tokens;
};

// Received rows of megamoe_ep_dispatch_expanded: x [R_max * k, H], expert_offsets [E_local + 1].
struct ExpandedOutputs {
  ScaledTensor x;
  Tensor expert_offsets;
};

struct CombineArgs {
  Tensor partial;  // [R_max, H] or [R_max * k, H], BF16 or FP32
  Tensor y;        // [T, H] BF16
};

// Runs `body`; what it throws becomes the Error the C ABI would report for it. A rank whose own part
// of a collective fails keeps taking part, and reports this error once the others are served.
template <typename Body>
std::optional<Error> attempt(Body&& body) {
  try {
    body();
    return std::nullopt;
  } catch (const Error& e) {
    return e;
  } catch (const std::bad_alloc&) {
    return Error(MEGAMOE_ERROR_OUT_OF_MEMORY, "out of host memory");
  } catch (const std::exception& e) {
    return Error(MEGAMOE_ERROR_INTERNAL, e.what());
  }
}

}  // namespace megamoe::ep
