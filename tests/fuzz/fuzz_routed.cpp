// Fuzz target: routed plans (creation arguments) and the routed GEMM through them: unsorted tokens
// with topk_idx holding out-of-range experts, optional weights and a device-side token count.
#include <algorithm>
#include <limits>

#include "harness.h"

using namespace fuzz;

namespace {

constexpr auto kFp8 = MEGAMOE_DTYPE_FP8_E4M3;
constexpr auto kF32 = MEGAMOE_DTYPE_FP32;
constexpr auto kIn = Role::kInput;

struct PlanArgs {
  int64_t max_tokens;
  int32_t top_k, experts;
  int64_t n, k;
  uint32_t flags;
  bool valid;
};

// Valid values are small so a plan's workspace stays small; the invalid ones straddle each limit.
PlanArgs read_plan(FuzzInput& in) {
  PlanArgs p{};
  p.max_tokens = in.pick<int64_t>({4, 1, 2, 0, -1, (int64_t{1} << 31) + 1, std::numeric_limits<int64_t>::max(),
                                   std::numeric_limits<int64_t>::min()});
  p.top_k = in.pick<int32_t>({2, 1, 3, 0, -1, 17, std::numeric_limits<int32_t>::min()});
  p.experts = in.pick<int32_t>({2, 1, 3, 0, -1, 1025});
  p.n = in.pick<int64_t>({128, 256, 0, 64, -128, 129});
  p.k = in.pick<int64_t>({128, 256, 0, 64, -128, 130});
  p.flags = in.pick<uint32_t>({0u, MEGAMOE_PLAN_EXPERT_SPECIALIZATION, 2u, 0x80000000u});
  p.valid = p.max_tokens >= 1 && p.max_tokens <= 4 && p.top_k >= 1 && p.top_k <= 16 && p.experts >= 1 &&
            p.experts <= 1024 && p.n > 0 && p.n % 128 == 0 && p.k > 0 && p.k % 128 == 0 && p.flags <= 1u;
  return p;
}

// The count in num_tokens: mostly within [0, T].
int64_t token_count(FuzzInput& in, int64_t tokens) {
  const uint8_t r = in.byte();
  if (r < 224) return tokens - r % (tokens + 1);
  const int64_t specials[] = {-1, tokens + 1, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
  return specials[r % 4];
}

void run_plan(FuzzInput& in, megamoe_routed_plan_t plan, const PlanArgs& p) {
  const int64_t t = in.pick<int64_t>({std::min<int64_t>(2, p.max_tokens), p.max_tokens, 0, 1, p.max_tokens + 1});
  const uint8_t handle_choice = in.byte() % 16;
  megamoe_routed_plan_t plan_arg = handle_choice == 15   ? nullptr
                                   : handle_choice == 14 ? reinterpret_cast<megamoe_routed_plan_t>(shared_context())
                                                         : plan;
  Call call(in, "megamoe_gemm_routed");
  const auto* a = call.tensor(kFp8, {t, p.k}, kIn);
  const auto* a_scales = call.tensor(kF32, {t, p.k / 128}, kIn);
  const auto* b = call.tensor(kFp8, {p.experts, p.n, p.k}, kIn);
  const auto* b_scales = call.tensor(kF32, {p.experts, p.n / 128, p.k / 128}, kIn);
  const auto idx_dtype = in.pick<megamoe_dtype_t>({MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64});
  const auto* topk_idx =
      call.tensor(idx_dtype, {t, p.top_k}, kIn, [&](int64_t) { return expert_index(in, p.experts); });
  const auto* topk_weights = call.optional_tensor(kF32, {t, p.top_k}, kIn);
  const auto* num_tokens =
      call.optional_tensor(MEGAMOE_DTYPE_INT32, {1}, kIn, [&](int64_t) { return token_count(in, t); });
  const auto* d = call.tensor(MEGAMOE_DTYPE_BF16, {t, p.top_k, p.n}, Role::kOutput);

  // The contract: num_tokens[0] in [0, T]; topk_idx in [-1, E) for the rows of the valid tokens.
  const int64_t rows = dim_of(a, 0, t);
  int64_t valid_tokens = rows;
  bool indices_valid = true;  // T = 0 reads no index (docs/RELIABILITY.md)
  if (const auto count = read_indices(num_tokens); count && rows > 0) {
    valid_tokens = count->empty() ? rows : (*count)[0];
    indices_valid = valid_tokens >= 0 && valid_tokens <= rows;
  }
  if (const auto idx = read_indices(topk_idx); idx && indices_valid && rows > 0) {
    indices_valid = experts_in_range(*idx, p.experts, std::min<int64_t>(valid_tokens, static_cast<int64_t>(idx->size())) * p.top_k);
  }
  void* stream = stream_argument(in);
  const bool valid = plan_arg == plan && t <= p.max_tokens && indices_valid && !call.mutated();
  call.run(
      [&] {
        return megamoe_gemm_routed(plan_arg, a, a_scales, b, b_scales, topk_idx, topk_weights, num_tokens, d, stream);
      },
      valid, indices_valid);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return run_input(data, size, [](FuzzInput& in) {
    const PlanArgs p = read_plan(in);
    bool good_context = false;
    megamoe_context_t context = context_argument(in, shared_context(), good_context);
    const bool null_out = in.byte() % 16 == 15;
    megamoe_routed_plan_t plan = nullptr;
    Call create(in, "megamoe_routed_plan_create");
    const megamoe_status_t status = create.run(
        [&] {
          return megamoe_routed_plan_create(context, p.max_tokens, p.top_k, p.experts, p.n, p.k, p.flags,
                                            null_out ? nullptr : &plan);
        },
        good_context && p.valid && !null_out);
    if (status != MEGAMOE_SUCCESS) {
      if (plan != nullptr) fail("megamoe_routed_plan_create failed but wrote out_plan");
      return;
    }
    Owned<megamoe_routed_plan_t, megamoe_routed_plan_destroy> owned(plan);
    int calls = 0;
    do {
      run_plan(in, plan, p);
    } while (!in.exhausted() && ++calls < 3);
  });
}
