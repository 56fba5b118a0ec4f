// Operation 6: routed grouped GEMM over unsorted tokens, through a plan that owns the workspace.
#include "abi/guard.h"
#include "abi/operands.h"

using namespace megamoe;

namespace {

void check_positive_multiple_of_128(const char* argument, int64_t value) {
  if (value <= 0 || value % 128 != 0) invalid(argument, "is ", value, "; it must be a positive multiple of 128");
}

}  // namespace

extern "C" {

MEGAMOE_API megamoe_status_t megamoe_routed_plan_create(megamoe_context_t context, int64_t max_tokens, int32_t top_k,
                                                        int32_t num_experts, int64_t n, int64_t k, uint32_t flags,
                                                        megamoe_routed_plan_t* out_plan) {
  return guarded(__func__, [&] {
    auto& ctx = require_handle(context, "context");
    auto& out = require_out(out_plan, "out_plan");
    if (max_tokens < 1 || max_tokens > kMaxTokens) {
      invalid("max_tokens", "is ", max_tokens, "; expected 1 to 2^31");
    }
    if (top_k < 1 || top_k > kMaxTopK) invalid("top_k", "is ", top_k, "; expected 1 to ", kMaxTopK);
    if (num_experts < 1 || num_experts > kMaxExperts) {
      invalid("num_experts", "is ", num_experts, "; expected 1 to ", kMaxExperts);
    }
    check_positive_multiple_of_128("n", n);
    check_positive_multiple_of_128("k", k);
    if ((flags & ~MEGAMOE_PLAN_EXPERT_SPECIALIZATION) != 0) {
      invalid("flags", "unknown bits 0x", std::hex, flags & ~MEGAMOE_PLAN_EXPERT_SPECIALIZATION);
    }
    auto plan = std::make_unique<megamoe_routed_plan>();
    plan->backend = ctx.backend;
    plan->spec = RoutedPlanSpec{max_tokens, top_k, num_experts, n, k, flags};
    plan->impl = ctx.backend->create_routed_plan(plan->spec);
    out = publish(std::move(plan));
  });
}

MEGAMOE_API megamoe_status_t megamoe_routed_plan_destroy(megamoe_routed_plan_t plan) {
  return guarded(__func__, [&] {
    destroy_handle(plan, "plan");
  });
}

MEGAMOE_API megamoe_status_t megamoe_gemm_routed(megamoe_routed_plan_t plan, const megamoe_tensor_t* a,
                                                 const megamoe_tensor_t* a_scales, const megamoe_tensor_t* b,
                                                 const megamoe_tensor_t* b_scales, const megamoe_tensor_t* topk_idx,
                                                 const megamoe_tensor_t* topk_weights,
                                                 const megamoe_tensor_t* num_tokens, const megamoe_tensor_t* d,
                                                 void* stream) {
  return guarded(__func__, [&] {
    auto& p = require_handle(plan, "plan");
    const RoutedPlanSpec& spec = p.spec;
    const TensorChecker check(p.backend->device());
    RoutedGemmArgs args;
    args.a = check_activations(check, a, a_scales, "[T, K]", "[T, K/128]");
    const int64_t tokens = args.a.data.shape[0];
    if (tokens > spec.max_tokens) {
      invalid("a", "has ", tokens, " tokens; the plan was created for at most max_tokens = ", spec.max_tokens);
    }
    expect_dim("a", args.a.data, 1, spec.k, "K, as the plan was created");
    args.b = check_weights(check, b, b_scales, true, spec.k);
    expect_dim("b", args.b.data, 0, spec.num_experts, "num_experts, as the plan was created");
    expect_dim("b", args.b.data, 1, spec.n, "N, as the plan was created");
    args.topk_idx = check.tensor("topk_idx", topk_idx, {MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64}, "[T, top_k]");
    expect_dim("topk_idx", args.topk_idx, 0, tokens, "T, the rows of 'a'");
    expect_dim("topk_idx", args.topk_idx, 1, spec.top_k, "top_k, as the plan was created");
    args.topk_weights = check.optional_tensor("topk_weights", topk_weights, {MEGAMOE_DTYPE_FP32}, "[T, top_k]");
    if (args.topk_weights) {
      expect_dim("topk_weights", *args.topk_weights, 0, tokens, "T, the rows of 'a'");
      expect_dim("topk_weights", *args.topk_weights, 1, spec.top_k, "top_k, as the plan was created");
    }
    args.num_tokens = check.optional_tensor("num_tokens", num_tokens, {MEGAMOE_DTYPE_INT32}, "[1]");
    if (args.num_tokens) expect_dim("num_tokens", *args.num_tokens, 0, 1, "a single count");
    args.d = check.tensor("d", d, {MEGAMOE_DTYPE_BF16}, "[T, top_k, N]");
    expect_dim("d", args.d, 0, tokens, "T, the rows of 'a'");
    expect_dim("d", args.d, 1, spec.top_k, "top_k, as the plan was created");
    expect_dim("d", args.d, 2, spec.n, "N, as the plan was created");
    expect_disjoint("d", args.d,
                    {{"a", args.a.data}, {"a_scales", args.a.scales}, {"b", args.b.data}, {"b_scales", args.b.scales},
                     {"topk_idx", args.topk_idx}, {"topk_weights", args.topk_weights},
                     {"num_tokens", args.num_tokens}});
    if (tokens == 0) return;
    std::lock_guard<std::mutex> lock(p.run_mutex);
    p.impl->run(args, stream);
  });
}

}  // extern "C"
