// Quantization and dequantization (docs/NUMERICS.md section 2) against the independent reference.
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "support/test_support.h"

namespace {

using mmt::GuardedOut;
using mmt::HostVec;
using mmt::last_error;
using mmt::make_tensor;

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows (or blocks) of very different magnitudes, a few all-zero and tiny groups, values far below
// and at the FP8 range: exercises the 1e-4 floor and saturation.
HostVec<float> interesting_values(mmt::Rng& rng, int64_t rows, int64_t cols) {
  HostVec<float> x(static_cast<std::size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const int kind = static_cast<int>(rng.range(0, 9));
    const double mag = std::pow(10.0, rng.uniform(-3.0, 4.0));
    for (int64_t c = 0; c < cols; ++c) {
      double v = rng.normal(0.0, mag);
      if (kind == 0) v = 0.0;                                  // amax 0 -> floor 1e-4
      if (kind == 1) v = rng.normal(0.0, 1e-6);                // amax below the floor
      if (kind == 2 && rng.chance(0.1)) v = (rng.chance(0.5) ? -1.0 : 1.0) * 1e30;
      if (kind == 3 && rng.chance(0.3)) v = -0.0;              // signed zeros
      x[static_cast<std::size_t>(r * cols + c)] = static_cast<float>(v);
    }
  }
  return x;
}

struct ActShape {
  int64_t M, K;
};
void PrintTo(const ActShape& s, std::ostream* os) { *os << "M" << s.M << "_K" << s.K; }

std::string shape_name(int64_t M, int64_t K, bool ue8m0, const char* dtype) {
  return "M=" + std::to_string(M) + " K=" + std::to_string(K) + (ue8m0 ? " UE8M0 " : " ") + dtype;
}

// ------------------------------------------------------------------------------------------------
// Activations
// ------------------------------------------------------------------------------------------------
void check_quantize_activations(megamoe_context_t ctx, mmt::Rng& rng, int64_t M, int64_t K, bool ue8m0, bool bf16_input) {
  SCOPED_TRACE(shape_name(M, K, ue8m0, bf16_input ? "BF16" : "FP32"));
  const int64_t G = cdiv(K, 128);
  HostVec<float> x = interesting_values(rng, M, K);
  HostVec<uint16_t> xb;
  megamoe_tensor_t xt;
  if (bf16_input) {
    xb = mmt::to_bf16(x);
    x = mmt::from_bf16(xb);  // the values the library sees
    xt = make_tensor(xb.data(), MEGAMOE_DTYPE_BF16, {M, K});
  } else {
    xt = make_tensor(x.data(), MEGAMOE_DTYPE_FP32, {M, K});
  }
  GuardedOut<uint8_t> q(M * K);
  GuardedOut<float> s(M * G);
  const auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {M, K});
  const auto st = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {M, G});
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, ue8m0 ? MEGAMOE_QUANT_UE8M0_SCALES : MEGAMOE_QUANT_DEFAULT,
                                         nullptr),
            MEGAMOE_SUCCESS)
      << last_error();
  HostVec<uint8_t> want_q(static_cast<std::size_t>(M * K));
  HostVec<float> want_s(static_cast<std::size_t>(M * G));
  mmt::ref_quantize_activations(x.data(), M, K, ue8m0, want_q.data(), want_s.data());
  EXPECT_TRUE(mmt::float_bits_equal(s.data(), want_s.data(), M * G)) << "scales";
  EXPECT_TRUE(mmt::bytes_equal(q.data(), want_q.data(), M * K)) << "FP8 codes";
  EXPECT_TRUE(q.guard_intact()) << "wrote past q";
  EXPECT_TRUE(s.guard_intact()) << "wrote past scales";
  if (ue8m0) {
    for (int64_t i = 0; i < M * G; ++i) {
      int e = 0;
      ASSERT_EQ(std::frexp(s[i], &e), 0.5f) << "UE8M0 scale " << s[i] << " is not a power of two";
    }
  }
}

class QuantizeActivations : public ::testing::TestWithParam<std::tuple<ActShape, bool, bool>> {};

TEST_P(QuantizeActivations, MatchesReferenceBitwise) {
  const auto& [shape, ue8m0, bf16] = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  check_quantize_activations(ctx, rng, shape.M, shape.K, ue8m0, bf16);
}

INSTANTIATE_TEST_SUITE_P(Shapes, QuantizeActivations,
                         ::testing::Combine(::testing::Values(ActShape{1, 128}, ActShape{7, 256}, ActShape{33, 200},
                                                              ActShape{3, 64}, ActShape{2, 1}, ActShape{16, 1000},
                                                              ActShape{130, 384}),
                                            ::testing::Bool(), ::testing::Bool()));

TEST(QuantizeActivationsSpecial, KnownValues) {
  // One group: amax = 896 -> sf = 2, q = x / 2 exactly.
  mmt::ScopedContext ctx;
  HostVec<float> x(128, 0.0f);
  x[0] = 896.0f;
  x[1] = -3.0f;
  x[2] = 1.0f;
  x[3] = 1.0f + 1.0f / 16.0f;  // 0.53125 -> ties between 0.5 and 0.5625 -> even (0.5)
  HostVec<uint8_t> q(128);
  HostVec<float> s(1);
  auto xt = make_tensor(x.data(), MEGAMOE_DTYPE_FP32, {1, 128});
  auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 128});
  auto st = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {1, 1});
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, 0, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(s[0], 2.0f);
  EXPECT_EQ(q[0], 0x7E);  // 448
  EXPECT_EQ(mmt::fp8_decode(q[1]), -1.5f);
  EXPECT_EQ(mmt::fp8_decode(q[2]), 0.5f);
  EXPECT_EQ(mmt::fp8_decode(q[3]), 0.5f);
  EXPECT_EQ(q[4], 0x00);
  // All zeros: sf = 1e-4 / 448 (float division), q = +0.
  std::fill(x.begin(), x.end(), 0.0f);
  x[5] = -0.0f;
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, 0, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(s[0], 1e-4f / 448.0f);
  EXPECT_EQ(q[0], 0x00);
  EXPECT_EQ(q[5], 0x80) << "-0 quantizes to the FP8 negative zero";
  // UE8M0 of the floor: 2^ceil(log2(1e-4/448)) = 2^-22.
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, MEGAMOE_QUANT_UE8M0_SCALES, nullptr), MEGAMOE_SUCCESS);
  EXPECT_EQ(s[0], std::ldexp(1.0f, -22));
}

TEST(QuantizeActivationsSpecial, NanIsIgnoredByAmaxAndQuantizesToNanCode) {
  mmt::ScopedContext ctx;
  const int64_t K = 256;
  HostVec<float> x(static_cast<std::size_t>(K));
  for (int64_t k = 0; k < K; ++k) x[static_cast<std::size_t>(k)] = static_cast<float>(k % 17) - 8.0f;
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[200] = -std::numeric_limits<float>::quiet_NaN();
  HostVec<uint8_t> q(static_cast<std::size_t>(K)), want_q(q.size());
  HostVec<float> s(2), want_s(2);
  auto xt = make_tensor(x.data(), MEGAMOE_DTYPE_FP32, {1, K});
  auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, K});
  auto st = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {1, 2});
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, 0, nullptr), MEGAMOE_SUCCESS) << last_error();
  mmt::ref_quantize_activations(x.data(), 1, K, false, want_q.data(), want_s.data());
  EXPECT_EQ(s[0], 8.0f / 448.0f);
  EXPECT_EQ(q[3], 0x7F);
  EXPECT_EQ(q[200], 0x7F);
  EXPECT_TRUE(mmt::float_bits_equal(s.data(), want_s.data(), 2));
  EXPECT_TRUE(mmt::bytes_equal(q.data(), want_q.data(), K));

  // BF16 NaN too.
  HostVec<uint16_t> xb = mmt::to_bf16(x);
  xb[5] = 0xFFC1;
  auto xbt = make_tensor(xb.data(), MEGAMOE_DTYPE_BF16, {1, K});
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xbt, &qt, &st, 0, nullptr), MEGAMOE_SUCCESS) << last_error();
  HostVec<float> xw = mmt::from_bf16(xb);
  mmt::ref_quantize_activations(xw.data(), 1, K, false, want_q.data(), want_s.data());
  EXPECT_EQ(q[5], 0x7F);
  EXPECT_TRUE(mmt::float_bits_equal(s.data(), want_s.data(), 2));
  EXPECT_TRUE(mmt::bytes_equal(q.data(), want_q.data(), K));
}

// An infinity makes amax and sf infinite, inv = 0: finite values give signed zeros, the
// infinity itself inf * 0 = NaN -> 0x7F (section 2 applied literally).
TEST(QuantizeActivationsSpecial, InfinityInAGroup) {
  mmt::ScopedContext ctx;
  HostVec<float> x(128, 1.5f);
  x[1] = -2.0f;
  x[7] = std::numeric_limits<float>::infinity();
  HostVec<uint8_t> q(128), want_q(128);
  HostVec<float> s(1), want_s(1);
  auto xt = make_tensor(x.data(), MEGAMOE_DTYPE_FP32, {1, 128});
  auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 128});
  auto st = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {1, 1});
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, 0, nullptr), MEGAMOE_SUCCESS) << last_error();
  mmt::ref_quantize_activations(x.data(), 1, 128, false, want_q.data(), want_s.data());
  EXPECT_TRUE(std::isinf(s[0]));
  EXPECT_EQ(q[0], 0x00);
  EXPECT_EQ(q[1], 0x80);
  EXPECT_EQ(q[7], 0x7F);
  EXPECT_TRUE(mmt::bytes_equal(q.data(), want_q.data(), 128));
}

TEST(QuantizeActivationsSpecial, ZeroRowsIsANoOp) {
  mmt::ScopedContext ctx;
  for (bool null_data : {true, false}) {
    HostVec<float> x(128);
    GuardedOut<uint8_t> q(0);
    GuardedOut<float> s(0);
    auto xt = make_tensor(null_data ? nullptr : x.data(), MEGAMOE_DTYPE_FP32, {0, 256});
    auto qt = make_tensor(null_data ? nullptr : q.data(), MEGAMOE_DTYPE_FP8_E4M3, {0, 256});
    auto st = make_tensor(null_data ? nullptr : s.data(), MEGAMOE_DTYPE_FP32, {0, 2});
    EXPECT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, 0, nullptr), MEGAMOE_SUCCESS) << last_error();
    EXPECT_TRUE(q.untouched());
    EXPECT_TRUE(s.untouched());
    // And the inverse.
    auto ot = make_tensor(null_data ? nullptr : x.data(), MEGAMOE_DTYPE_FP32, {0, 256});
    EXPECT_EQ(megamoe_dequantize_activations(ctx, &qt, &st, &ot, nullptr), MEGAMOE_SUCCESS) << last_error();
  }
}

// ------------------------------------------------------------------------------------------------
// The checked quantizer: the plain quantizer's bits, plus a count of the rows holding NaN or +-Inf.
// ------------------------------------------------------------------------------------------------
struct CheckedRun {
  HostVec<uint8_t> q;
  HostVec<float> s;
  int32_t count;
};

// megamoe_quantize_activations_checked on x [M, K] of `dtype`, the counter starting at `start`.
CheckedRun run_checked(megamoe_context_t ctx, const void* x, megamoe_dtype_t dtype, int64_t M, int64_t K,
                       int32_t start, uint32_t flags = 0) {
  CheckedRun r{HostVec<uint8_t>(static_cast<std::size_t>(M * K)), HostVec<float>(static_cast<std::size_t>(M * cdiv(K, 128))),
               start};
  HostVec<int32_t> count(1, start);
  const auto xt = make_tensor(x, dtype, {M, K});
  const auto qt = make_tensor(r.q.data(), MEGAMOE_DTYPE_FP8_E4M3, {M, K});
  const auto st = make_tensor(r.s.data(), MEGAMOE_DTYPE_FP32, {M, cdiv(K, 128)});
  const auto ct = make_tensor(count.data(), MEGAMOE_DTYPE_INT32, {1});
  EXPECT_EQ(megamoe_quantize_activations_checked(ctx, &xt, &qt, &st, flags, &ct, nullptr), MEGAMOE_SUCCESS)
      << last_error();
  r.count = count[0];
  return r;
}

TEST(QuantizeActivationsChecked, CountsRowsWithNanOrInfinityAndWritesThePlainBits) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  ASSERT_EQ(megamoe_context_set_num_threads(ctx, 3), MEGAMOE_SUCCESS);  // rows counted across workers
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (const auto& [M, K] : std::vector<std::pair<int64_t, int64_t>>{{1, 128}, {67, 300}, {600, 256}, {5, 7}}) {
    HostVec<float> x = interesting_values(rng, M, K);
    int32_t want = 0;
    for (int64_t r = 0; r < M; ++r) {
      if (!rng.chance(0.4)) continue;
      ++want;
      for (int64_t n = rng.range(1, 3); n > 0; --n) {
        x[static_cast<std::size_t>(r * K + rng.range(0, K - 1))] = specials[rng.range(0, 3)];
      }
    }
    const HostVec<uint16_t> xb = mmt::to_bf16(x);
    for (bool bf16 : {false, true}) {
      SCOPED_TRACE(shape_name(M, K, false, bf16 ? "bf16" : "fp32"));
      const void* data = bf16 ? static_cast<const void*>(xb.data()) : x.data();
      const megamoe_dtype_t dtype = bf16 ? MEGAMOE_DTYPE_BF16 : MEGAMOE_DTYPE_FP32;
      const CheckedRun got = run_checked(ctx, data, dtype, M, K, 7, MEGAMOE_QUANT_UE8M0_SCALES);
      EXPECT_EQ(got.count, 7 + want);
      HostVec<uint8_t> q(got.q.size());
      HostVec<float> s(got.s.size());
      const auto xt = make_tensor(data, dtype, {M, K});
      const auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {M, K});
      const auto st = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {M, cdiv(K, 128)});
      ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, MEGAMOE_QUANT_UE8M0_SCALES, nullptr), MEGAMOE_SUCCESS);
      EXPECT_TRUE(mmt::bytes_equal(got.q.data(), q.data(), M * K));
      EXPECT_TRUE(mmt::float_bits_equal(got.s.data(), s.data(), static_cast<int64_t>(s.size())));
    }
  }
}

TEST(QuantizeActivationsChecked, FiniteExtremesAreNotCountedAndTheCountWraps) {
  mmt::ScopedContext ctx;
  // Largest finite values, denormals and signed zeros are finite; BF16 0x7F80 is +Inf, 0x7F81 a NaN.
  HostVec<float> finite = {std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                           std::numeric_limits<float>::denorm_min(), -0.0f};
  EXPECT_EQ(run_checked(ctx, finite.data(), MEGAMOE_DTYPE_FP32, 1, 4, 0).count, 0);
  HostVec<uint16_t> bf16 = {0x7F7F, 0xFF7F, 0x0001, 0x8000, 0x7F80, 0x0000, 0x0000, 0x0000,
                            0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0xFF81};
  EXPECT_EQ(run_checked(ctx, bf16.data(), MEGAMOE_DTYPE_BF16, 4, 4, 0).count, 2);
  // The counter is 32-bit and wraps as the device's atomicAdd does.
  EXPECT_EQ(run_checked(ctx, bf16.data(), MEGAMOE_DTYPE_BF16, 4, 4, std::numeric_limits<int32_t>::max()).count,
            std::numeric_limits<int32_t>::min() + 1);
}

TEST(QuantizeActivationsChecked, NoCounterIsThePlainQuantizerAndNoRowsLeaveTheCountAlone) {
  mmt::ScopedContext ctx;
  HostVec<float> x(256, 2.0f);
  x[3] = std::numeric_limits<float>::infinity();
  HostVec<uint8_t> q(256), q_plain(256);
  HostVec<float> s(2), s_plain(2);
  const auto xt = make_tensor(x.data(), MEGAMOE_DTYPE_FP32, {1, 256});
  const auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 256});
  const auto st = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {1, 2});
  const auto qpt = make_tensor(q_plain.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 256});
  const auto spt = make_tensor(s_plain.data(), MEGAMOE_DTYPE_FP32, {1, 2});
  ASSERT_EQ(megamoe_quantize_activations_checked(ctx, &xt, &qt, &st, 0, nullptr, nullptr), MEGAMOE_SUCCESS)
      << last_error();
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qpt, &spt, 0, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_TRUE(mmt::bytes_equal(q.data(), q_plain.data(), 256));
  EXPECT_TRUE(mmt::float_bits_equal(s.data(), s_plain.data(), 2));

  HostVec<int32_t> count(1, 41);
  const auto ct = make_tensor(count.data(), MEGAMOE_DTYPE_INT32, {1});
  const auto empty_x = make_tensor(nullptr, MEGAMOE_DTYPE_FP32, {0, 256});
  const auto empty_q = make_tensor(nullptr, MEGAMOE_DTYPE_FP8_E4M3, {0, 256});
  const auto empty_s = make_tensor(nullptr, MEGAMOE_DTYPE_FP32, {0, 2});
  EXPECT_EQ(megamoe_quantize_activations_checked(ctx, &empty_x, &empty_q, &empty_s, 0, &ct, nullptr), MEGAMOE_SUCCESS)
      << last_error();
  EXPECT_EQ(count[0], 41);
}

// ------------------------------------------------------------------------------------------------
// Weights
// ------------------------------------------------------------------------------------------------
struct WeightShape {
  int64_t E, N, K;  // E = 0: rank-2 [N, K]
};
void PrintTo(const WeightShape& s, std::ostream* os) { *os << "E" << s.E << "_N" << s.N << "_K" << s.K; }

class QuantizeWeights : public ::testing::TestWithParam<std::tuple<WeightShape, bool, bool>> {};

TEST_P(QuantizeWeights, MatchesReferenceBitwise) {
  const auto& [shape, ue8m0, bf16] = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const bool rank2 = shape.E == 0;
  const int64_t E = rank2 ? 1 : shape.E, N = shape.N, K = shape.K;
  const int64_t BN = cdiv(N, 128), BK = cdiv(K, 128);
  SCOPED_TRACE("E=" + std::to_string(shape.E) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
               (ue8m0 ? " UE8M0" : "") + (bf16 ? " BF16" : " FP32"));
  // Each expert row gets a different magnitude, so blocks differ.
  HostVec<float> w = interesting_values(rng, E * N, K);
  HostVec<uint16_t> wb;
  auto dims = [&](std::vector<int64_t> tail) {
    if (!rank2) tail.insert(tail.begin(), E);
    return tail;
  };
  megamoe_tensor_t wt;
  if (bf16) {
    wb = mmt::to_bf16(w);
    w = mmt::from_bf16(wb);
    wt = make_tensor(wb.data(), MEGAMOE_DTYPE_BF16, dims({N, K}));
  } else {
    wt = make_tensor(w.data(), MEGAMOE_DTYPE_FP32, dims({N, K}));
  }
  GuardedOut<uint8_t> q(E * N * K);
  GuardedOut<float> s(E * BN * BK);
  const auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, dims({N, K}));
  const auto st = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, dims({BN, BK}));
  ASSERT_EQ(megamoe_quantize_weights(ctx, &wt, &qt, &st, ue8m0 ? MEGAMOE_QUANT_UE8M0_SCALES : 0u, nullptr),
            MEGAMOE_SUCCESS)
      << last_error();
  HostVec<uint8_t> want_q(static_cast<std::size_t>(E * N * K));
  HostVec<float> want_s(static_cast<std::size_t>(E * BN * BK));
  mmt::ref_quantize_weights(w.data(), E, N, K, ue8m0, want_q.data(), want_s.data());
  EXPECT_TRUE(mmt::float_bits_equal(s.data(), want_s.data(), E * BN * BK)) << "scales";
  EXPECT_TRUE(mmt::bytes_equal(q.data(), want_q.data(), E * N * K)) << "FP8 codes";
  EXPECT_TRUE(q.guard_intact());
  EXPECT_TRUE(s.guard_intact());

  // Dequantize back: out = q * sf exactly (FP32) or rounded once (BF16).
  for (bool bf16_out : {false, true}) {
    SCOPED_TRACE(bf16_out ? "dequantize to BF16" : "dequantize to FP32");
    GuardedOut<uint8_t> out_bytes(E * N * K * (bf16_out ? 2 : 4));
    const auto ot = make_tensor(out_bytes.data(), bf16_out ? MEGAMOE_DTYPE_BF16 : MEGAMOE_DTYPE_FP32, dims({N, K}));
    ASSERT_EQ(megamoe_dequantize_weights(ctx, &qt, &st, &ot, nullptr), MEGAMOE_SUCCESS) << last_error();
    EXPECT_TRUE(out_bytes.guard_intact());
    int64_t bad = 0;
    for (int64_t e = 0; e < E; ++e)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) {
          const int64_t i = (e * N + n) * K + k;
          const float prod = mmt::fp8_decode(want_q[static_cast<std::size_t>(i)]) *
                             want_s[static_cast<std::size_t>((e * BN + n / 128) * BK + k / 128)];
          bool ok;
          if (bf16_out) {
            uint16_t got;
            std::memcpy(&got, out_bytes.data() + 2 * i, 2);
            ok = got == mmt::bf16_encode(prod);
          } else {
            float got;
            std::memcpy(&got, out_bytes.data() + 4 * i, 4);
            ok = mmt::float_to_bits(got) == mmt::float_to_bits(prod) || (std::isnan(got) && std::isnan(prod));
          }
          if (!ok && bad++ < 5) ADD_FAILURE() << "element (" << e << ", " << n << ", " << k << ") differs";
        }
    EXPECT_EQ(bad, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, QuantizeWeights,
                         ::testing::Combine(::testing::Values(WeightShape{0, 128, 128}, WeightShape{0, 200, 136},
                                                              WeightShape{3, 256, 384}, WeightShape{2, 130, 129},
                                                              WeightShape{1, 1, 1}, WeightShape{2, 64, 300}),
                                            ::testing::Bool(), ::testing::Bool()));

// ------------------------------------------------------------------------------------------------
// Dequantize activations
// ------------------------------------------------------------------------------------------------
TEST(DequantizeActivations, MatchesOneMultiplicationAndOneRounding) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  for (const ActShape& shape : {ActShape{1, 128}, ActShape{9, 200}, ActShape{64, 512}, ActShape{3, 5}}) {
    const int64_t M = shape.M, K = shape.K, G = cdiv(K, 128);
    SCOPED_TRACE("M=" + std::to_string(M) + " K=" + std::to_string(K));
    auto q = mmt::random_fp8(rng, M * K);
    auto s = mmt::random_scales(rng, M * G, -30, 30);
    const auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {M, K});
    const auto st = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {M, G});
    GuardedOut<float> f(M * K);
    GuardedOut<uint16_t> b(M * K);
    const auto ft = make_tensor(f.data(), MEGAMOE_DTYPE_FP32, {M, K});
    const auto bt = make_tensor(b.data(), MEGAMOE_DTYPE_BF16, {M, K});
    ASSERT_EQ(megamoe_dequantize_activations(ctx, &qt, &st, &ft, nullptr), MEGAMOE_SUCCESS) << last_error();
    ASSERT_EQ(megamoe_dequantize_activations(ctx, &qt, &st, &bt, nullptr), MEGAMOE_SUCCESS) << last_error();
    HostVec<float> want_f(static_cast<std::size_t>(M * K));
    HostVec<uint16_t> want_b(static_cast<std::size_t>(M * K));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) {
        const auto i = static_cast<std::size_t>(m * K + k);
        want_f[i] = mmt::fp8_decode(q[i]) * s[static_cast<std::size_t>(m * G + k / 128)];
        want_b[i] = mmt::bf16_encode(want_f[i]);
      }
    EXPECT_TRUE(mmt::float_bits_equal(f.data(), want_f.data(), M * K));
    EXPECT_TRUE(mmt::bf16_bits_equal(b.data(), want_b.data(), M * K));
    EXPECT_TRUE(f.guard_intact());
    EXPECT_TRUE(b.guard_intact());
  }
}

TEST(DequantizeActivations, NanCodeGivesNan) {
  mmt::ScopedContext ctx;
  HostVec<uint8_t> q(128, 0x38);
  q[0] = 0x7F;
  q[1] = 0xFF;
  HostVec<float> s(1, 0.25f), f(128);
  HostVec<uint16_t> b(128);
  const auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 128});
  const auto st = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {1, 1});
  const auto ft = make_tensor(f.data(), MEGAMOE_DTYPE_FP32, {1, 128});
  const auto bt = make_tensor(b.data(), MEGAMOE_DTYPE_BF16, {1, 128});
  ASSERT_EQ(megamoe_dequantize_activations(ctx, &qt, &st, &ft, nullptr), MEGAMOE_SUCCESS) << last_error();
  ASSERT_EQ(megamoe_dequantize_activations(ctx, &qt, &st, &bt, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_TRUE(std::isnan(f[0]));
  EXPECT_TRUE(std::isnan(f[1]));
  EXPECT_EQ(f[2], 0.25f);
  EXPECT_EQ(b[0], 0x7FFF);
  EXPECT_EQ(b[1], 0x7FFF);
  EXPECT_EQ(b[2], 0x3E80);
}

// Quantize then dequantize stays close to the input (a float64 sanity check of the pair).
TEST(QuantizeRoundTrip, RelativeErrorIsSmall) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const int64_t M = 32, K = 512;
  auto x = mmt::random_normal(rng, M * K, 5.0);
  HostVec<uint8_t> q(static_cast<std::size_t>(M * K));
  HostVec<float> s(static_cast<std::size_t>(M * 4)), back(static_cast<std::size_t>(M * K));
  const auto xt = make_tensor(x.data(), MEGAMOE_DTYPE_FP32, {M, K});
  const auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {M, K});
  const auto st = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {M, 4});
  const auto bt = make_tensor(back.data(), MEGAMOE_DTYPE_FP32, {M, K});
  for (uint32_t flags : {0u, static_cast<uint32_t>(MEGAMOE_QUANT_UE8M0_SCALES)}) {
    ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, flags, nullptr), MEGAMOE_SUCCESS) << last_error();
    ASSERT_EQ(megamoe_dequantize_activations(ctx, &qt, &st, &bt, nullptr), MEGAMOE_SUCCESS) << last_error();
    std::vector<double> want(x.begin(), x.end()), got(back.begin(), back.end());
    EXPECT_LT(mmt::rel_error(want, got), 0.05) << "flags " << flags;
    EXPECT_GT(mmt::rel_error(want, got), 0.0) << "FP8 cannot be lossless on normal data";
  }
}

}  // namespace
