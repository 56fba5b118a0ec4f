// The MoE layer (docs/NUMERICS.md section 4): bitwise against an independent implementation of the
// section, and within diff <= 3e-3 (5e-3 on test-sized shapes: mmt::moe_f64_bound) of a float64
// computation of the unquantized math on the dequantized weights. Routings, activation variants,
// weight formats, FP8 input, expert counts, num_tokens, determinism, progress / cancel and workspace
// queries.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "support/moe_problem.h"
#include "support/test_support.h"

namespace {

using mmt::GuardedOut;
using mmt::HostVec;
using mmt::last_error;
using mmt::make_tensor;

using mmt::MoeBatch;
using mmt::MoeProblem;
using mmt::MoeWeightArgs;
using mmt::Routing;
using mmt::WeightMode;

using Layer = mmt::Owned<megamoe_moe_layer_t, megamoe_moe_layer_destroy>;

megamoe_status_t create_layer(megamoe_context_t ctx, const MoeProblem& p, WeightMode mode, bool interleaved, Layer& layer,
                              megamoe_progress_fn progress = nullptr, void* user = nullptr) {
  MoeWeightArgs w(p, mode, interleaved);
  megamoe_moe_config_t c = mmt::moe_config(p, interleaved ? MEGAMOE_MOE_W13_INTERLEAVED : MEGAMOE_MOE_DEFAULT);
  c.progress = progress;
  c.progress_user_data = user;
  return megamoe_moe_layer_create(ctx, &c, &w.w13_t, w.w13_scales(), &w.w2_t, w.w2_scales(), nullptr, layer.out());
  // `w` is freed here: the layer must have copied the weights.
}

struct ForwardOptions {
  bool idx64 = false;
  int32_t* expert_counts = nullptr;  // [E]
  const int32_t* num_tokens = nullptr;
  bool fp8_x = false;  // pass x quantized by the reference (FP8 + scales)
};

megamoe_status_t forward(megamoe_moe_layer_t layer, const MoeProblem& p, const MoeBatch& b, uint16_t* y,
                         const ForwardOptions& opt = {}) {
  const int64_t T = b.T, k = b.k, H = p.cfg.H;
  HostVec<int32_t> idx32(b.idx.size());
  HostVec<int64_t> idx64(b.idx.size());
  for (std::size_t i = 0; i < b.idx.size(); ++i) {
    idx32[i] = static_cast<int32_t>(b.idx[i]);
    idx64[i] = b.idx[i];
  }
  HostVec<uint8_t> qx(static_cast<std::size_t>(T * H));
  HostVec<float> sx(static_cast<std::size_t>(T * H / 128));
  megamoe_tensor_t xt, st;
  if (opt.fp8_x) {
    mmt::ref_quantize_activations(b.xf.data(), T, H, false, qx.data(), sx.data());
    xt = make_tensor(T ? qx.data() : nullptr, MEGAMOE_DTYPE_FP8_E4M3, {T, H});
    st = make_tensor(T ? sx.data() : nullptr, MEGAMOE_DTYPE_FP32, {T, H / 128});
  } else {
    xt = make_tensor(T ? b.x.data() : nullptr, MEGAMOE_DTYPE_BF16, {T, H});
  }
  const auto it = opt.idx64 ? make_tensor(T ? idx64.data() : nullptr, MEGAMOE_DTYPE_INT64, {T, k})
                            : make_tensor(T ? idx32.data() : nullptr, MEGAMOE_DTYPE_INT32, {T, k});
  const auto wt = make_tensor(T ? b.w.data() : nullptr, MEGAMOE_DTYPE_FP32, {T, k});
  const auto yt = make_tensor(T ? y : nullptr, MEGAMOE_DTYPE_BF16, {T, H});
  const auto ct = make_tensor(opt.expert_counts, MEGAMOE_DTYPE_INT32, {p.cfg.E});
  const auto nt = make_tensor(opt.num_tokens, MEGAMOE_DTYPE_INT32, {1});
  return megamoe_moe_layer_forward(layer, &xt, opt.fp8_x ? &st : nullptr, &it, &wt, &yt,
                                   opt.expert_counts ? &ct : nullptr, opt.num_tokens ? &nt : nullptr, nullptr);
}

// Bitwise against section 4 and within mmt::moe_f64_bound of float64, for the first `valid` tokens.
void expect_matches_reference(const MoeProblem& p, const MoeBatch& b, const uint16_t* y, int64_t valid = -1,
                              bool check_f64 = true) {
  const int64_t T = valid < 0 ? b.T : valid, H = p.cfg.H;
  if (T == 0) return;
  HostVec<uint8_t> qx(static_cast<std::size_t>(T * H));
  HostVec<float> sx(static_cast<std::size_t>(T * H / 128));
  mmt::ref_quantize_activations(b.xf.data(), T, H, false, qx.data(), sx.data());
  HostVec<uint16_t> want(static_cast<std::size_t>(T * H));
  mmt::ref_moe_forward(p.cfg, p.q, qx.data(), sx.data(), b.idx.data(), b.w.data(), T, want.data());
  EXPECT_TRUE(mmt::bf16_bits_equal(y, want.data(), T * H)) << "bitwise vs docs/NUMERICS.md section 4";
  if (check_f64) mmt::expect_within_f64_bound(p, b, y, T);
}

std::vector<int32_t> expected_counts(const MoeBatch& b, int64_t E, int64_t valid) {
  std::vector<int32_t> c(static_cast<std::size_t>(E), 0);
  for (int64_t t = 0; t < valid; ++t)
    for (int64_t j = 0; j < b.k; ++j) {
      const int64_t e = b.idx[static_cast<std::size_t>(t * b.k + j)];
      if (e >= 0) ++c[static_cast<std::size_t>(e)];
    }
  return c;
}

// ------------------------------------------------------------------------------------------------
// Routings x token counts (H=256, I=256, E=8, k=4, max_tokens=64).
// ------------------------------------------------------------------------------------------------
class MoeRouting : public ::testing::TestWithParam<std::tuple<Routing, int64_t>> {};

TEST_P(MoeRouting, MatchesReferences) {
  const auto& [routing, T] = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  SCOPED_TRACE(std::string(mmt::routing_name(routing)) + " T=" + std::to_string(T));
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 8, 4, 256, 256, 64);
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Fp8, false, layer), MEGAMOE_SUCCESS) << last_error();
  const MoeBatch b = mmt::make_moe_batch(rng, p, T, routing);
  GuardedOut<uint16_t> y(T * p.cfg.H);
  ForwardOptions opt;
  opt.idx64 = (T % 2) == 0;
  ASSERT_EQ(forward(layer.get(), p, b, y.data(), opt), MEGAMOE_SUCCESS) << last_error();
  expect_matches_reference(p, b, y.data());
  EXPECT_TRUE(y.guard_intact()) << "wrote past y";
}

INSTANTIATE_TEST_SUITE_P(All, MoeRouting,
                         ::testing::Combine(::testing::Values(Routing::Uniform, Routing::Skewed, Routing::OneExpert,
                                                              Routing::OneExpertAllSlots, Routing::Dropped,
                                                              Routing::Duplicates, Routing::AllDropped),
                                            ::testing::Values(int64_t{1}, int64_t{7}, int64_t{64})));

// top_k may exceed the number of experts (megamoe.h): a token then names some expert in several slots,
// and each slot is its own term of the sum, with its own weight.
TEST(MoeLayer, TopKLargerThanTheExpertCountIsAccepted) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 2, 5, 256, 128, 16);
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Bf16, false, layer), MEGAMOE_SUCCESS) << last_error();
  const MoeBatch b = mmt::make_moe_batch(rng, p, 9, Routing::Uniform);
  GuardedOut<uint16_t> y(9 * p.cfg.H);
  ASSERT_EQ(forward(layer.get(), p, b, y.data(), ForwardOptions()), MEGAMOE_SUCCESS) << last_error();
  expect_matches_reference(p, b, y.data());
}

TEST(MoeLayer, ZeroTokensDoesNothing) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 4, 2, 128, 128, 8);
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Bf16, false, layer), MEGAMOE_SUCCESS) << last_error();
  const MoeBatch b = mmt::make_moe_batch(rng, p, 0, Routing::Uniform);
  HostVec<int32_t> counts = {5, 6, 7, 8};
  ForwardOptions opt;
  opt.expert_counts = counts.data();
  EXPECT_EQ(forward(layer.get(), p, b, nullptr, opt), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(counts, (HostVec<int32_t>{5, 6, 7, 8}));
  HostVec<int32_t> nt = {0};
  opt.num_tokens = nt.data();
  opt.idx64 = true;
  EXPECT_EQ(forward(layer.get(), p, b, nullptr, opt), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(counts, (HostVec<int32_t>{5, 6, 7, 8}));
}

// ------------------------------------------------------------------------------------------------
// Activation variants
// ------------------------------------------------------------------------------------------------
struct ActivationCase {
  const char* name;
  float alpha, beta, clamp, rsf;
  double gain;
};

void PrintTo(const ActivationCase& c, std::ostream* os) { *os << c.name; }

class MoeActivation : public ::testing::TestWithParam<ActivationCase> {};

TEST_P(MoeActivation, MatchesReferences) {
  const ActivationCase c = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  SCOPED_TRACE(c.name);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  MoeProblem p = mmt::make_moe_problem(rng, 8, 4, 256, 256, 32, c.gain);
  p.cfg.alpha = c.alpha;
  p.cfg.beta = c.beta;
  p.cfg.clamp = c.clamp;
  p.cfg.rsf = c.rsf;
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Fp8, false, layer), MEGAMOE_SUCCESS) << last_error();
  const MoeBatch b = mmt::make_moe_batch(rng, p, 32, Routing::Dropped, c.clamp > 0.0f ? 0.3 : 1.0);
  GuardedOut<uint16_t> y(32 * p.cfg.H);
  ASSERT_EQ(forward(layer.get(), p, b, y.data()), MEGAMOE_SUCCESS) << last_error();
  expect_matches_reference(p, b, y.data());
}

INSTANTIATE_TEST_SUITE_P(Variants, MoeActivation,
                         ::testing::Values(ActivationCase{"swiglu", 1.0f, 0.0f, 0.0f, 1.0f, 1.0},
                                           ActivationCase{"swiglu-clamp", 1.0f, 0.0f, 1.25f, 1.0f, 1.5},
                                           ActivationCase{"gpt-oss", 1.702f, 1.0f, 7.0f, 1.0f, 5.0},
                                           ActivationCase{"gpt-oss-no-clamp", 1.702f, 1.0f, 0.0f, 1.0f, 1.0},
                                           ActivationCase{"deepseek-v3-rsf", 1.0f, 0.0f, 0.0f, 2.5f, 1.0},
                                           ActivationCase{"clamp-and-rsf", 1.0f, 0.0f, 2.0f, 2.5f, 2.0}),
                         [](const ::testing::TestParamInfo<ActivationCase>& param_info) {
                           std::string n = param_info.param.name;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// The clamp must actually change the result (guards against a test that cannot see it).
TEST(MoeLayer, ClampChangesTheOutput) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  MoeProblem p = mmt::make_moe_problem(rng, 4, 2, 128, 128, 8, 4.0);
  const MoeBatch b = mmt::make_moe_batch(rng, p, 8, Routing::Uniform, 0.3);
  std::vector<HostVec<uint16_t>> ys;
  for (float clamp : {0.0f, 0.5f}) {
    p.cfg.clamp = clamp;
    Layer layer;
    ASSERT_EQ(create_layer(ctx, p, WeightMode::Fp8, false, layer), MEGAMOE_SUCCESS) << last_error();
    HostVec<uint16_t> y(static_cast<std::size_t>(8 * p.cfg.H));
    ASSERT_EQ(forward(layer.get(), p, b, y.data()), MEGAMOE_SUCCESS) << last_error();
    // A clamp this tight (|h| >> c) is outside what the float64 bound is meant for: bitwise only.
    expect_matches_reference(p, b, y.data(), -1, false);
    ys.push_back(y);
  }
  EXPECT_NE(ys[0], ys[1]);
}

// ------------------------------------------------------------------------------------------------
// Weight formats: FP8 + scales, BF16 or FP32 (quantized by the library), canonical or interleaved.
// ------------------------------------------------------------------------------------------------
TEST(MoeLayer, WeightFormatsAndInterleaveGiveIdenticalOutput) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 6, 3, 256, 384, 16);
  const MoeBatch b = mmt::make_moe_batch(rng, p, 16, Routing::Dropped);
  for (WeightMode mode : {WeightMode::Fp8, WeightMode::Bf16, WeightMode::Fp32}) {
    for (bool interleaved : {false, true}) {
      SCOPED_TRACE(std::string(mmt::weight_mode_name(mode)) + (interleaved ? " interleaved" : " canonical"));
      Layer layer;
      ASSERT_EQ(create_layer(ctx, p, mode, interleaved, layer), MEGAMOE_SUCCESS) << last_error();
      GuardedOut<uint16_t> y(16 * p.cfg.H);
      ASSERT_EQ(forward(layer.get(), p, b, y.data()), MEGAMOE_SUCCESS) << last_error();
      expect_matches_reference(p, b, y.data());
    }
  }
}

// The caller's weight memory may be reused right after creation.
TEST(MoeLayer, WeightsAreCopiedAtCreation) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 4, 2, 128, 256, 8);
  for (WeightMode mode : {WeightMode::Fp8, WeightMode::Bf16}) {
    SCOPED_TRACE(mmt::weight_mode_name(mode));
    MoeWeightArgs w(p, mode, false);
    const megamoe_moe_config_t c = mmt::moe_config(p);
    Layer layer;
    ASSERT_EQ(megamoe_moe_layer_create(ctx, &c, &w.w13_t, w.w13_scales(), &w.w2_t, w.w2_scales(), nullptr, layer.out()),
              MEGAMOE_SUCCESS)
        << last_error();
    mmt::poison(w.w13);
    mmt::poison(w.w2);
    mmt::poison(w.s13);
    mmt::poison(w.s2);
    const MoeBatch b = mmt::make_moe_batch(rng, p, 8, Routing::Uniform);
    HostVec<uint16_t> y(static_cast<std::size_t>(8 * p.cfg.H));
    ASSERT_EQ(forward(layer.get(), p, b, y.data()), MEGAMOE_SUCCESS) << last_error();
    expect_matches_reference(p, b, y.data());
  }
}

// ------------------------------------------------------------------------------------------------
// Inputs: FP8 x with scales, int32 vs int64 routing.
// ------------------------------------------------------------------------------------------------
TEST(MoeLayer, Fp8InputWithScalesMatchesBf16Input) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 8, 4, 256, 256, 32);
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Fp8, false, layer), MEGAMOE_SUCCESS) << last_error();
  const MoeBatch b = mmt::make_moe_batch(rng, p, 32, Routing::Skewed);
  HostVec<uint16_t> y_bf16(static_cast<std::size_t>(32 * p.cfg.H)), y_fp8(y_bf16.size()), y_i64(y_bf16.size());
  ASSERT_EQ(forward(layer.get(), p, b, y_bf16.data()), MEGAMOE_SUCCESS) << last_error();
  ForwardOptions opt;
  opt.fp8_x = true;
  ASSERT_EQ(forward(layer.get(), p, b, y_fp8.data(), opt), MEGAMOE_SUCCESS) << last_error();
  opt.idx64 = true;
  ASSERT_EQ(forward(layer.get(), p, b, y_i64.data(), opt), MEGAMOE_SUCCESS) << last_error();
  expect_matches_reference(p, b, y_fp8.data());
  EXPECT_TRUE(mmt::bf16_bits_equal(y_fp8.data(), y_bf16.data(), 32 * p.cfg.H));
  EXPECT_TRUE(mmt::bf16_bits_equal(y_i64.data(), y_bf16.data(), 32 * p.cfg.H));
}

// FP8 x that did not come from section-2 quantization (arbitrary codes and scales) is used as is.
TEST(MoeLayer, ArbitraryFp8InputIsUsedAsGiven) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 4, 2, 256, 128, 8);
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Fp8, false, layer), MEGAMOE_SUCCESS) << last_error();
  const int64_t T = 8, H = p.cfg.H;
  const MoeBatch b = mmt::make_moe_batch(rng, p, T, Routing::Uniform);
  auto qx = mmt::random_fp8(rng, T * H);
  auto sx = mmt::random_scales(rng, T * H / 128, -12, -6);
  HostVec<int32_t> idx(b.idx.begin(), b.idx.end());
  const auto xt = make_tensor(qx.data(), MEGAMOE_DTYPE_FP8_E4M3, {T, H});
  const auto st = make_tensor(sx.data(), MEGAMOE_DTYPE_FP32, {T, H / 128});
  const auto it = make_tensor(idx.data(), MEGAMOE_DTYPE_INT32, {T, 2});
  const auto wt = make_tensor(b.w.data(), MEGAMOE_DTYPE_FP32, {T, 2});
  HostVec<uint16_t> y(static_cast<std::size_t>(T * H)), want(y.size());
  const auto yt = make_tensor(y.data(), MEGAMOE_DTYPE_BF16, {T, H});
  ASSERT_EQ(megamoe_moe_layer_forward(layer.get(), &xt, &st, &it, &wt, &yt, nullptr, nullptr, nullptr),
            MEGAMOE_SUCCESS)
      << last_error();
  mmt::ref_moe_forward(p.cfg, p.q, qx.data(), sx.data(), b.idx.data(), b.w.data(), T, want.data());
  EXPECT_TRUE(mmt::bf16_bits_equal(y.data(), want.data(), T * H));
}

// ------------------------------------------------------------------------------------------------
// expert_counts and num_tokens
// ------------------------------------------------------------------------------------------------
TEST(MoeLayer, ExpertCountsAccumulate) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 8, 4, 128, 128, 32);
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Fp8, false, layer), MEGAMOE_SUCCESS) << last_error();
  HostVec<int32_t> counts(8);
  for (auto& c : counts) c = static_cast<int32_t>(rng.range(0, 1000));
  std::vector<int32_t> want(counts.begin(), counts.end());
  for (Routing r : {Routing::Skewed, Routing::Dropped, Routing::Duplicates}) {
    const MoeBatch b = mmt::make_moe_batch(rng, p, 32, r);
    HostVec<uint16_t> y(static_cast<std::size_t>(32 * p.cfg.H));
    ForwardOptions opt;
    opt.expert_counts = counts.data();
    opt.idx64 = r == Routing::Dropped;
    ASSERT_EQ(forward(layer.get(), p, b, y.data(), opt), MEGAMOE_SUCCESS) << last_error();
    const auto add = expected_counts(b, 8, 32);
    for (std::size_t e = 0; e < 8; ++e) want[e] += add[e];
    EXPECT_EQ(std::vector<int32_t>(counts.begin(), counts.end()), want) << mmt::routing_name(r);
    expect_matches_reference(p, b, y.data());
  }
}

TEST(MoeLayer, NumTokensLimitsReadsWritesAndCounts) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 8, 4, 256, 128, 40);
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Fp8, false, layer), MEGAMOE_SUCCESS) << last_error();
  const int64_t T = 40, H = p.cfg.H;
  for (int32_t valid : {0, 1, 17, 40}) {
    SCOPED_TRACE("num_tokens " + std::to_string(valid));
    const MoeBatch b = mmt::make_moe_batch(rng, p, T, Routing::Dropped);
    GuardedOut<uint16_t> y(T * H);
    HostVec<int32_t> counts(8, 0), nt = {valid};
    ForwardOptions opt;
    opt.expert_counts = counts.data();
    opt.num_tokens = nt.data();
    ASSERT_EQ(forward(layer.get(), p, b, y.data(), opt), MEGAMOE_SUCCESS) << last_error();
    expect_matches_reference(p, b, y.data(), valid);
    EXPECT_TRUE(mmt::all_bytes_are(y.data() + valid * H, static_cast<std::size_t>((T - valid) * H)))
        << "rows of tokens >= num_tokens must not be written";
    const auto want = expected_counts(b, 8, valid);
    EXPECT_EQ(std::vector<int32_t>(counts.begin(), counts.end()), want) << "only valid tokens are counted";
    EXPECT_EQ(nt[0], valid) << "num_tokens is an input";
  }
}

// ------------------------------------------------------------------------------------------------
// Determinism and batch independence
// ------------------------------------------------------------------------------------------------
TEST(MoeLayer, DeterministicAndIndependentOfTheBatch) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 8, 4, 256, 256, 48);
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Fp8, false, layer), MEGAMOE_SUCCESS) << last_error();
  const int64_t T = 48, H = p.cfg.H, k = p.cfg.k;
  const MoeBatch b = mmt::make_moe_batch(rng, p, T, Routing::Skewed);
  HostVec<uint16_t> y1(static_cast<std::size_t>(T * H)), y2(y1.size());
  ASSERT_EQ(forward(layer.get(), p, b, y1.data()), MEGAMOE_SUCCESS) << last_error();
  ASSERT_EQ(forward(layer.get(), p, b, y2.data()), MEGAMOE_SUCCESS) << last_error();
  EXPECT_TRUE(mmt::bf16_bits_equal(y2.data(), y1.data(), T * H)) << "two runs differ";

  // Each token alone (T = 1) gives its row of the batch.
  for (int64_t t : {int64_t{0}, int64_t{13}, T - 1}) {
    MoeBatch one;
    one.T = 1;
    one.k = k;
    one.x.assign(b.x.begin() + t * H, b.x.begin() + (t + 1) * H);
    one.xf.assign(b.xf.begin() + t * H, b.xf.begin() + (t + 1) * H);
    one.idx.assign(b.idx.begin() + t * k, b.idx.begin() + (t + 1) * k);
    one.w.assign(b.w.begin() + t * k, b.w.begin() + (t + 1) * k);
    HostVec<uint16_t> y(static_cast<std::size_t>(H));
    ASSERT_EQ(forward(layer.get(), p, one, y.data()), MEGAMOE_SUCCESS) << last_error();
    EXPECT_TRUE(mmt::bf16_bits_equal(y.data(), y1.data() + t * H, H)) << "token " << t << " alone vs in the batch";
  }

  // The batch reversed gives the rows reversed.
  MoeBatch rev = b;
  for (int64_t t = 0; t < T; ++t) {
    std::copy(b.x.begin() + (T - 1 - t) * H, b.x.begin() + (T - t) * H, rev.x.begin() + t * H);
    std::copy(b.xf.begin() + (T - 1 - t) * H, b.xf.begin() + (T - t) * H, rev.xf.begin() + t * H);
    std::copy(b.idx.begin() + (T - 1 - t) * k, b.idx.begin() + (T - t) * k, rev.idx.begin() + t * k);
    std::copy(b.w.begin() + (T - 1 - t) * k, b.w.begin() + (T - t) * k, rev.w.begin() + t * k);
  }
  HostVec<uint16_t> yr(y1.size());
  ASSERT_EQ(forward(layer.get(), p, rev, yr.data()), MEGAMOE_SUCCESS) << last_error();
  for (int64_t t = 0; t < T; ++t) {
    ASSERT_TRUE(mmt::bf16_bits_equal(yr.data() + t * H, y1.data() + (T - 1 - t) * H, H)) << "reversed token " << t;
  }

  // Different worker thread counts give the same bits.
  for (int32_t threads : {1, 3}) {
    ASSERT_EQ(megamoe_context_set_num_threads(ctx, threads), MEGAMOE_SUCCESS);
    Layer l2;
    ASSERT_EQ(create_layer(ctx, p, WeightMode::Bf16, false, l2), MEGAMOE_SUCCESS) << last_error();
    HostVec<uint16_t> y(y1.size());
    ASSERT_EQ(forward(l2.get(), p, b, y.data()), MEGAMOE_SUCCESS) << last_error();
    EXPECT_TRUE(mmt::bf16_bits_equal(y.data(), y1.data(), T * H)) << threads << " threads";
  }
}

// Concurrent forwards on one layer are serialized by the library (docs/API.md): each thread gets
// the result it would get alone.
TEST(MoeLayer, ConcurrentForwardsOnOneLayer) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 4, 2, 128, 128, 16);
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Fp8, false, layer), MEGAMOE_SUCCESS) << last_error();
  constexpr int kThreads = 4;
  std::vector<MoeBatch> batches;
  std::vector<HostVec<uint16_t>> ys(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    batches.push_back(mmt::make_moe_batch(rng, p, 16, Routing::Dropped));
    ys[static_cast<std::size_t>(i)].resize(static_cast<std::size_t>(16 * p.cfg.H));
  }
  std::vector<megamoe_status_t> status(kThreads, MEGAMOE_ERROR_INTERNAL);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const auto u = static_cast<std::size_t>(i);
      for (int rep = 0; rep < 4; ++rep) {
        status[u] = forward(layer.get(), p, batches[u], ys[u].data());
        if (status[u] != MEGAMOE_SUCCESS) return;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    const auto u = static_cast<std::size_t>(i);
    EXPECT_EQ(status[u], MEGAMOE_SUCCESS) << "thread " << i;
    expect_matches_reference(p, batches[u], ys[u].data(), -1, false);
  }
}

// The float64 bound (docs/NUMERICS.md section 4; Float64Reference.Bound in C# applies the same rule).
TEST(MoeLayer, Float64BoundIsLooserOnlyForSmallLayers) {
  EXPECT_EQ(mmt::moe_f64_bound(7168, 2048), 3e-3);
  EXPECT_EQ(mmt::moe_f64_bound(2048, 1024), 3e-3);
  EXPECT_EQ(mmt::moe_f64_bound(4096, 768), 5e-3);
  EXPECT_EQ(mmt::moe_f64_bound(1024, 2048), 5e-3);
  EXPECT_EQ(mmt::moe_f64_bound(128, 256), 5e-3);
}

// A layer serves any T <= max_tokens, repeatedly.
TEST(MoeLayer, VaryingTokenCountsOnOneLayer) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 5, 3, 128, 256, 20);
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Bf16, false, layer), MEGAMOE_SUCCESS) << last_error();
  for (int64_t T : {20, 1, 7, 0, 20, 3}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    const MoeBatch b = mmt::make_moe_batch(rng, p, T, Routing::Duplicates);
    GuardedOut<uint16_t> y(T * p.cfg.H);
    ASSERT_EQ(forward(layer.get(), p, b, y.data()), MEGAMOE_SUCCESS) << last_error();
    expect_matches_reference(p, b, y.data());
    EXPECT_TRUE(y.guard_intact());
  }
}

// One mid-size case (DeepSeek-like proportions, scaled down).
TEST(MoeLayer, MidSize) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  MoeProblem p = mmt::make_moe_problem(rng, 16, 6, 1024, 512, 128);
  p.cfg.rsf = 2.5f;
  Layer layer;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Bf16, true, layer), MEGAMOE_SUCCESS) << last_error();
  const MoeBatch b = mmt::make_moe_batch(rng, p, 40, Routing::Skewed);
  GuardedOut<uint16_t> y(40 * p.cfg.H);
  HostVec<int32_t> counts(16, 0);
  ForwardOptions opt;
  opt.expert_counts = counts.data();
  opt.idx64 = true;
  ASSERT_EQ(forward(layer.get(), p, b, y.data(), opt), MEGAMOE_SUCCESS) << last_error();
  expect_matches_reference(p, b, y.data());
  EXPECT_EQ(std::vector<int32_t>(counts.begin(), counts.end()), expected_counts(b, 16, 40));
  EXPECT_TRUE(y.guard_intact());
}

// ------------------------------------------------------------------------------------------------
// Progress, cancellation, workspace
// ------------------------------------------------------------------------------------------------
struct ProgressLog {
  std::vector<std::pair<int64_t, int64_t>> calls;
  int64_t cancel_at = -1;  // cancel on this call index (0-based); -1 = never
  static int32_t callback(void* user, int64_t done, int64_t total) {
    auto* log = static_cast<ProgressLog*>(user);
    log->calls.emplace_back(done, total);
    return static_cast<int64_t>(log->calls.size()) - 1 == log->cancel_at ? 1 : 0;
  }
};

TEST(MoeLayer, ProgressIsReportedDuringCreation) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 8, 2, 256, 128, 8);
  for (WeightMode mode : {WeightMode::Fp8, WeightMode::Bf16}) {
    SCOPED_TRACE(mmt::weight_mode_name(mode));
    ProgressLog log;
    Layer layer;
    ASSERT_EQ(create_layer(ctx, p, mode, false, layer, &ProgressLog::callback, &log), MEGAMOE_SUCCESS)
        << last_error();
    ASSERT_FALSE(log.calls.empty()) << "progress was never called";
    int64_t prev = 0;
    for (const auto& [done, total] : log.calls) {
      EXPECT_GT(total, 0);
      EXPECT_GE(done, 0);
      EXPECT_LE(done, total);
      EXPECT_GE(done, prev) << "progress went backwards";
      prev = done;
    }
    // The layer works.
    const MoeBatch b = mmt::make_moe_batch(rng, p, 4, Routing::Uniform);
    HostVec<uint16_t> y(static_cast<std::size_t>(4 * p.cfg.H));
    ASSERT_EQ(forward(layer.get(), p, b, y.data()), MEGAMOE_SUCCESS) << last_error();
    expect_matches_reference(p, b, y.data());
  }
}

TEST(MoeLayer, CancelReturnsCancelledAndCreatesNothing) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const MoeProblem p = mmt::make_moe_problem(rng, 8, 2, 256, 128, 8);
  ProgressLog full;
  {
    Layer layer;
    ASSERT_EQ(create_layer(ctx, p, WeightMode::Bf16, false, layer, &ProgressLog::callback, &full), MEGAMOE_SUCCESS);
  }
  ASSERT_FALSE(full.calls.empty());
  std::vector<int64_t> cancel_points = {0, static_cast<int64_t>(full.calls.size()) - 1};
  if (full.calls.size() > 2) cancel_points.push_back(static_cast<int64_t>(full.calls.size()) / 2);
  for (int64_t at : cancel_points) {
    for (WeightMode mode : {WeightMode::Fp8, WeightMode::Bf16}) {
      SCOPED_TRACE(std::string(mmt::weight_mode_name(mode)) + " cancel at call " + std::to_string(at));
      const int64_t live = megamoe_live_object_count();
      ProgressLog log;
      log.cancel_at = at;
      MoeWeightArgs w(p, mode, false);
      megamoe_moe_config_t c = mmt::moe_config(p);
      c.progress = &ProgressLog::callback;
      c.progress_user_data = &log;
      auto sentinel = reinterpret_cast<megamoe_moe_layer_t>(uintptr_t{0x5A5A5A70});
      megamoe_moe_layer_t out = sentinel;
      const megamoe_status_t st =
          megamoe_moe_layer_create(ctx, &c, &w.w13_t, w.w13_scales(), &w.w2_t, w.w2_scales(), nullptr, &out);
      if (static_cast<int64_t>(log.calls.size()) <= at) {
        // FP8 weights may need fewer progress steps than BF16 ones; no cancel happened then.
        if (st == MEGAMOE_SUCCESS) {
          EXPECT_EQ(megamoe_moe_layer_destroy(out), MEGAMOE_SUCCESS);
        }
        continue;
      }
      EXPECT_EQ(st, MEGAMOE_ERROR_CANCELLED) << last_error();
      EXPECT_EQ(out, sentinel) << "a cancelled create must not write out_layer";
      EXPECT_EQ(megamoe_live_object_count(), live) << "a cancelled create must not leave objects behind";
      EXPECT_EQ(static_cast<int64_t>(log.calls.size()), at + 1) << "progress called again after cancel";
    }
  }
}

TEST(MoeLayer, WorkspaceSize) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  MoeProblem p = mmt::make_moe_problem(rng, 4, 2, 128, 128, 8);
  int64_t prev = 0;
  for (int64_t max_tokens : {1, 8, 256, 4096}) {
    p.max_tokens = max_tokens;
    Layer layer;
    ASSERT_EQ(create_layer(ctx, p, WeightMode::Fp8, false, layer), MEGAMOE_SUCCESS) << last_error();
    int64_t bytes = -1;
    ASSERT_EQ(megamoe_moe_layer_get_workspace_size(layer.get(), &bytes), MEGAMOE_SUCCESS) << last_error();
    EXPECT_GT(bytes, 0);
    EXPECT_GE(bytes, prev) << "workspace shrank as max_tokens grew to " << max_tokens;
    prev = bytes;
    int64_t again = -1;
    ASSERT_EQ(megamoe_moe_layer_get_workspace_size(layer.get(), &again), MEGAMOE_SUCCESS);
    EXPECT_EQ(again, bytes);
  }
  int64_t untouched = 1234;
  EXPECT_EQ(megamoe_moe_layer_get_workspace_size(nullptr, &untouched), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(mmt::contains(last_error(), "'layer'")) << last_error();
  EXPECT_EQ(untouched, 1234);
  Layer layer;
  p.max_tokens = 8;
  ASSERT_EQ(create_layer(ctx, p, WeightMode::Fp8, false, layer), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_moe_layer_get_workspace_size(layer.get(), nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(mmt::contains(last_error(), "'out_bytes'")) << last_error();
}

}  // namespace
