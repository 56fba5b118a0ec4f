// MoE layer test problems shared by the single-GPU layer tests and the expert-parallel tests: random
// BF16 weights with their reference FP8 quantization, the caller-side weight arguments in each format,
// batches under the routings the layer tests cover, and the float64 bound of docs/NUMERICS.md section 4.
#pragma once

#include <cstdint>
#include <ostream>
#include <vector>

#include "support/test_support.h"

namespace mmt {

// The float64 distance of docs/NUMERICS.md section 4 is a statistic of the activations' FP8 rounding.
// With H >= 2048 and I >= 1024 (dozens of 128-groups per token) it stays within 3e-3. The few
// groups of a test-sized problem give it a longer tail (5e4 CPU cases at H 128, I 256:
// median 9.6e-4, p99.99 2.6e-3, max 3.1e-3: docs/NUMERICS.md section 4), so there the bound is
// 5e-3, still half of what a wrong slot, weight or group scale costs (1e-2 or more).
constexpr double kMoeF64Bound = 3e-3;
constexpr double kMoeF64BoundSmallShape = 5e-3;
inline double moe_f64_bound(int64_t H, int64_t I) {
  return H >= 2048 && I >= 1024 ? kMoeF64Bound : kMoeF64BoundSmallShape;
}

// Canonical BF16 weights, their widened values and their reference FP8 quantization.
struct MoeProblem {
  MoeRefConfig cfg;
  int64_t max_tokens = 0;
  HostVec<uint16_t> w13_bf16, w2_bf16;
  HostVec<float> w13_f, w2_f;
  MoeRefWeights q;
};

MoeProblem make_moe_problem(Rng& rng, int64_t E, int64_t k, int64_t H, int64_t I, int64_t max_tokens,
                            double gain = 1.0);

// The fields megamoe_moe_config_t and megamoe_ep_config_t share, set from the problem.
template <typename Config>
Config layer_config(const MoeProblem& p, uint32_t flags) {
  Config c{};
  c.struct_size = sizeof c;
  c.flags = flags;
  c.num_experts = static_cast<int32_t>(p.cfg.E);
  c.top_k = static_cast<int32_t>(p.cfg.k);
  c.hidden = p.cfg.H;
  c.intermediate = p.cfg.I;
  c.activation_alpha = p.cfg.alpha;
  c.activation_beta = p.cfg.beta;
  c.activation_clamp = p.cfg.clamp;
  c.routed_scaling_factor = p.cfg.rsf;
  return c;
}

megamoe_moe_config_t moe_config(const MoeProblem& p, uint32_t flags = MEGAMOE_MOE_DEFAULT);

enum class WeightMode { Fp8, Bf16, Fp32 };
const char* weight_mode_name(WeightMode m);

// Caller-side weight storage of experts [first, first + count) of a problem, in one format.
struct MoeWeightArgs {
  HostVec<uint8_t> w13, w2;  // raw bytes in the chosen dtype
  HostVec<float> s13, s2;
  megamoe_tensor_t w13_t{}, w2_t{}, s13_t{}, s2_t{};
  bool scales = false;

  MoeWeightArgs(const MoeProblem& p, WeightMode mode, bool interleaved) : MoeWeightArgs(p, mode, interleaved, 0, p.cfg.E) {}
  MoeWeightArgs(const MoeProblem& p, WeightMode mode, bool interleaved, int64_t first, int64_t count);
  // Moves keep the descriptors valid (the storage moves with them); copies would not.
  MoeWeightArgs(MoeWeightArgs&&) = default;
  MoeWeightArgs& operator=(MoeWeightArgs&&) = default;
  MoeWeightArgs(const MoeWeightArgs&) = delete;
  MoeWeightArgs& operator=(const MoeWeightArgs&) = delete;
  const megamoe_tensor_t* w13_scales() const { return scales ? &s13_t : nullptr; }
  const megamoe_tensor_t* w2_scales() const { return scales ? &s2_t : nullptr; }
};

enum class Routing { Uniform, Skewed, OneExpert, OneExpertAllSlots, Dropped, Duplicates, AllDropped };
const char* routing_name(Routing r);
void PrintTo(Routing r, std::ostream* os);  // gtest parameter names

struct MoeBatch {
  int64_t T = 0, k = 0;
  HostVec<uint16_t> x;  // BF16 [T, H]
  HostVec<float> xf;    // widened
  std::vector<int64_t> idx;
  HostVec<float> w;
};

// log10_spread: 20% of the tokens are scaled by 10^U(-spread, spread). With a saturating clamp,
// very large tokens make the FP8 noise of h comparable to the clamp window, which the float64
// bound of section 4 is not meant for; those cases use a smaller spread.
MoeBatch make_moe_batch(Rng& rng, const MoeProblem& p, int64_t T, Routing routing, double log10_spread = 1.0);

// y [T, H] within moe_f64_bound of the float64 computation of the unquantized math, for the first
// `valid` tokens (all when negative); tokens whose slots are all dropped must be +0.
void expect_within_f64_bound(const MoeProblem& p, const MoeBatch& b, const uint16_t* y, int64_t valid = -1);

}  // namespace mmt
