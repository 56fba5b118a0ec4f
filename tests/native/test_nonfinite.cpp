// What non-finite input becomes (docs/NUMERICS.md section 5): each statement of that section, checked
// on the CPU backend. The library never refuses NaN or infinities in data; these are the consequences
// of the formulas, which a server must know to decide what to check
// (megamoe_quantize_activations_checked counts such rows without a host synchronization).
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "support/test_support.h"

namespace {

using mmt::HostVec;
using mmt::last_error;
using mmt::make_tensor;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

bool bf16_is_nan(uint16_t bits) { return (bits & 0x7F80u) == 0x7F80u && (bits & 0x7Fu) != 0; }
bool bf16_is_finite(uint16_t bits) { return (bits & 0x7F80u) != 0x7F80u; }

// Section 2: an infinity makes its group's scale infinite, so the group's finite values quantize to
// (signed) zeros and the infinity to the NaN code; dequantized, the whole group is NaN (0 * inf), and
// the other groups of the row are untouched.
TEST(NonFinite, AnInfinityTurnsItsGroupIntoZerosAndOneNanCodeAndDequantizesToNan) {
  mmt::ScopedContext ctx;
  HostVec<float> x(256, 3.0f);
  x[1] = -2.0f;
  x[5] = -kInf;
  HostVec<uint8_t> q(256);
  HostVec<float> s(2), back(256);
  const auto xt = make_tensor(x.data(), MEGAMOE_DTYPE_FP32, {1, 256});
  const auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 256});
  const auto st = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {1, 2});
  const auto bt = make_tensor(back.data(), MEGAMOE_DTYPE_FP32, {1, 256});
  for (uint32_t flags : {MEGAMOE_QUANT_DEFAULT, MEGAMOE_QUANT_UE8M0_SCALES}) {
    ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, flags, nullptr), MEGAMOE_SUCCESS) << last_error();
    EXPECT_EQ(s[0], kInf);
    EXPECT_EQ(q[0], 0x00);
    EXPECT_EQ(q[1], 0x80);
    EXPECT_EQ(q[5] & 0x7F, 0x7F);
    EXPECT_TRUE(std::isfinite(s[1]));
    ASSERT_EQ(megamoe_dequantize_activations(ctx, &qt, &st, &bt, nullptr), MEGAMOE_SUCCESS) << last_error();
    for (int i = 0; i < 128; ++i) EXPECT_TRUE(std::isnan(back[static_cast<std::size_t>(i)])) << i;
    for (int i = 128; i < 256; ++i) EXPECT_EQ(back[static_cast<std::size_t>(i)], 3.0f) << i;
  }
  // The same for a weight's 128x128 block: [256, 128] has two blocks, the infinity is in the second.
  HostVec<float> w(256 * 128, 3.0f);
  w[200 * 128 + 5] = kInf;
  HostVec<uint8_t> wq(w.size());
  HostVec<float> ws(2);
  const auto wt = make_tensor(w.data(), MEGAMOE_DTYPE_FP32, {256, 128});
  const auto wqt = make_tensor(wq.data(), MEGAMOE_DTYPE_FP8_E4M3, {256, 128});
  const auto wst = make_tensor(ws.data(), MEGAMOE_DTYPE_FP32, {2, 1});
  ASSERT_EQ(megamoe_quantize_weights(ctx, &wt, &wqt, &wst, 0, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_TRUE(std::isfinite(ws[0]));
  EXPECT_EQ(ws[1], kInf);
  EXPECT_EQ(wq[128 * 128], 0x00);
  EXPECT_EQ(wq[200 * 128 + 5], 0x7F);
}

// Section 2: a NaN is skipped by the amax, so only its own element changes (the NaN code).
TEST(NonFinite, ANanChangesOnlyItsOwnElement) {
  mmt::ScopedContext ctx;
  HostVec<float> x(128, 3.0f);
  HostVec<uint8_t> q(128), q_clean(128);
  HostVec<float> s(1), s_clean(1);
  const auto xt = make_tensor(x.data(), MEGAMOE_DTYPE_FP32, {1, 128});
  const auto st = make_tensor(s_clean.data(), MEGAMOE_DTYPE_FP32, {1, 1});
  const auto qt = make_tensor(q_clean.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 128});
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, 0, nullptr), MEGAMOE_SUCCESS);
  x[9] = kNaN;
  const auto st2 = make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {1, 1});
  const auto qt2 = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 128});
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt2, &st2, 0, nullptr), MEGAMOE_SUCCESS);
  EXPECT_EQ(s[0], s_clean[0]);
  for (int i = 0; i < 128; ++i) EXPECT_EQ(q[static_cast<std::size_t>(i)], i == 9 ? 0x7F : q_clean[static_cast<std::size_t>(i)]);
}

// ------------------------------------------------------------------------------------------------
// Section 4: the MoE layer.
// ------------------------------------------------------------------------------------------------
constexpr int64_t kE = 4, kH = 256, kI = 128, kT = 6;
constexpr int32_t kK = 2;

struct Inputs {
  HostVec<uint16_t> x;
  HostVec<int32_t> idx;
  HostVec<float> w;
};

class SmallLayer {
 public:
  SmallLayer(megamoe_context_t ctx, mmt::Rng& rng, float clamp) {
    const auto w13 = mmt::to_bf16(mmt::random_normal(rng, kE * 2 * kI * kH, 1.0 / 16));
    const auto w2 = mmt::to_bf16(mmt::random_normal(rng, kE * kH * kI, 1.0 / 11));
    megamoe_moe_config_t cfg = mmt::moe_config(kE, kK, kH, kI, kT);
    cfg.activation_clamp = clamp;
    const auto t13 = make_tensor(w13.data(), MEGAMOE_DTYPE_BF16, {kE, 2 * kI, kH});
    const auto t2 = make_tensor(w2.data(), MEGAMOE_DTYPE_BF16, {kE, kH, kI});
    EXPECT_EQ(megamoe_moe_layer_create(ctx, &cfg, &t13, nullptr, &t2, nullptr, nullptr, &layer_), MEGAMOE_SUCCESS)
        << last_error();
  }
  ~SmallLayer() { megamoe_moe_layer_destroy(layer_); }
  SmallLayer(const SmallLayer&) = delete;
  SmallLayer& operator=(const SmallLayer&) = delete;

  HostVec<uint16_t> forward(const Inputs& in) const {
    HostVec<uint16_t> y(static_cast<std::size_t>(kT * kH));
    mmt::poison(y);
    const auto xt = make_tensor(in.x.data(), MEGAMOE_DTYPE_BF16, {kT, kH});
    const auto it = make_tensor(in.idx.data(), MEGAMOE_DTYPE_INT32, {kT, kK});
    const auto wt = make_tensor(in.w.data(), MEGAMOE_DTYPE_FP32, {kT, kK});
    const auto yt = make_tensor(y.data(), MEGAMOE_DTYPE_BF16, {kT, kH});
    EXPECT_EQ(megamoe_moe_layer_forward(layer_, &xt, nullptr, &it, &wt, &yt, nullptr, nullptr, nullptr),
              MEGAMOE_SUCCESS)
        << last_error();
    return y;
  }

 private:
  megamoe_moe_layer_t layer_ = nullptr;
};

// Every token routed to experts 0 and 1, so that tokens with the same h get the same output.
Inputs clean_inputs(mmt::Rng& rng) {
  Inputs in{mmt::to_bf16(mmt::random_normal(rng, kT * kH)), HostVec<int32_t>(), HostVec<float>()};
  for (int64_t t = 0; t < kT; ++t) {
    in.idx.push_back(0);
    in.idx.push_back(1);
    in.w.push_back(0.75f);
    in.w.push_back(0.25f);
  }
  return in;
}

// A layer, a clean batch and its output: what each test changes one value of.
struct Scene {
  Scene(mmt::Rng& rng, float clamp) : layer(ctx, rng, clamp), in(clean_inputs(rng)), clean(layer.forward(in)) {}
  mmt::ScopedContext ctx;
  SmallLayer layer;
  Inputs in;
  HostVec<uint16_t> clean;
};

// Rows of y other than `token` are bitwise those of `clean`.
void expect_other_rows_unchanged(const HostVec<uint16_t>& y, const HostVec<uint16_t>& clean, int64_t token) {
  for (int64_t t = 0; t < kT; ++t) {
    if (t == token) continue;
    for (int64_t h = 0; h < kH; ++h) {
      const auto i = static_cast<std::size_t>(t * kH + h);
      ASSERT_EQ(y[i], clean[i]) << "token " << t << " column " << h;
    }
  }
}

TEST(NonFinite, WithoutAClampNanOrInfinityInATokenGivesANanRowForThatTokenOnly) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const Scene s(rng, 0.0f);
  for (uint16_t bad : {uint16_t{0x7FC0}, uint16_t{0x7F80}, uint16_t{0xFF80}}) {  // NaN, +Inf, -Inf
    Inputs b = s.in;
    b.x[static_cast<std::size_t>(2 * kH + 77)] = bad;
    const HostVec<uint16_t> y = s.layer.forward(b);
    for (int64_t h = 0; h < kH; ++h) EXPECT_TRUE(bf16_is_nan(y[static_cast<std::size_t>(2 * kH + h)])) << h;
    expect_other_rows_unchanged(y, s.clean, 2);
  }
}

TEST(NonFinite, WithAClampNanOrInfinityInATokenGivesAFiniteRowIndependentOfItsValues) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const Scene s(rng, 7.0f);
  std::vector<HostVec<uint16_t>> rows;
  for (uint16_t bad : {uint16_t{0x7FC0}, uint16_t{0x7F80}, uint16_t{0xFF80}}) {
    for (int64_t token : {1, 4}) {
      Inputs b = s.in;
      b.x[static_cast<std::size_t>(token * kH + 3)] = bad;
      const HostVec<uint16_t> y = s.layer.forward(b);
      HostVec<uint16_t> row(y.begin() + token * kH, y.begin() + (token + 1) * kH);
      for (uint16_t v : row) EXPECT_TRUE(bf16_is_finite(v));
      expect_other_rows_unchanged(y, s.clean, token);
      rows.push_back(row);
    }
  }
  // h is NaN whatever the bad value and the token, the clamp maps it to (g, u) = (c, -c): one row.
  for (const auto& row : rows) EXPECT_TRUE(row == rows.front());
}

TEST(NonFinite, ANonFiniteTopKWeightPoisonsOnlyItsTokenAndNotWhenItsSlotIsDropped) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  for (float clamp : {0.0f, 7.0f}) {
    const Scene s(rng, clamp);
    for (float bad : {kNaN, kInf}) {
      Inputs b = s.in;
      b.w[3 * kK + 1] = bad;
      const HostVec<uint16_t> y = s.layer.forward(b);
      for (int64_t h = 0; h < kH; ++h) EXPECT_TRUE(bf16_is_nan(y[static_cast<std::size_t>(3 * kH + h)])) << h;
      expect_other_rows_unchanged(y, s.clean, 3);

      b.idx[3 * kK + 1] = -1;  // a dropped slot's weight is never read
      Inputs dropped = s.in;
      dropped.idx[3 * kK + 1] = -1;
      EXPECT_TRUE(s.layer.forward(b) == s.layer.forward(dropped));
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Section 3: scales in the GEMMs. acc = fmaf(sa * sb, partial, acc), so a NaN scale makes every output
// it multiplies NaN, and an infinite one gives +-inf where the block's partial sum is nonzero and NaN
// (0 * inf) where it is zero.
// ------------------------------------------------------------------------------------------------
TEST(NonFinite, NanOrInfiniteScalesReachExactlyTheOutputsTheyMultiply) {
  mmt::ScopedContext ctx;
  constexpr int64_t M = 3, N = 256, K = 256;
  HostVec<uint8_t> a(M * K, 0x38), b(N * K, 0x38);  // all ones
  for (int64_t k = 0; k < 128; ++k) a[static_cast<std::size_t>(2 * K + k)] = 0x00;  // row 2, block 0: partial 0
  HostVec<float> sa(M * 2, 1.0f), sb(2 * 2, 1.0f);
  HostVec<uint16_t> d(M * N);
  const auto at = make_tensor(a.data(), MEGAMOE_DTYPE_FP8_E4M3, {M, K});
  const auto sat = make_tensor(sa.data(), MEGAMOE_DTYPE_FP32, {M, 2});
  const auto bt = make_tensor(b.data(), MEGAMOE_DTYPE_FP8_E4M3, {N, K});
  const auto sbt = make_tensor(sb.data(), MEGAMOE_DTYPE_FP32, {2, 2});
  const auto dt = make_tensor(d.data(), MEGAMOE_DTYPE_BF16, {M, N});
  const auto out = [&](int64_t m, int64_t n) { return d[static_cast<std::size_t>(m * N + n)]; };

  // A NaN a-scale: that row, every column.
  sa[1 * 2 + 1] = kNaN;
  ASSERT_EQ(megamoe_gemm_dense(ctx, &at, &sat, &bt, &sbt, &dt, nullptr), MEGAMOE_SUCCESS) << last_error();
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      if (m == 1) EXPECT_TRUE(bf16_is_nan(out(m, n)));
      else EXPECT_EQ(mmt::bf16_decode(out(m, n)), m == 2 ? 128.0f : 256.0f);
    }
  }
  // An infinite b-scale of column block 1, K block 0: those 128 columns of every row; +inf where the
  // partial sum is 128, NaN in row 2, whose partial sum over that K block is 0.
  sa[1 * 2 + 1] = 1.0f;
  sb[1 * 2 + 0] = kInf;
  ASSERT_EQ(megamoe_gemm_dense(ctx, &at, &sat, &bt, &sbt, &dt, nullptr), MEGAMOE_SUCCESS) << last_error();
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      if (n < 128) EXPECT_EQ(mmt::bf16_decode(out(m, n)), m == 2 ? 128.0f : 256.0f);
      else if (m == 2) EXPECT_TRUE(bf16_is_nan(out(m, n)));
      else EXPECT_EQ(out(m, n), 0x7F80) << "+inf";
    }
  }
  // A NaN code in A: every output of its row.
  sb[1 * 2 + 0] = 1.0f;
  a[0 * K + 200] = 0x7F;
  ASSERT_EQ(megamoe_gemm_dense(ctx, &at, &sat, &bt, &sbt, &dt, nullptr), MEGAMOE_SUCCESS) << last_error();
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      if (m == 0) EXPECT_TRUE(bf16_is_nan(out(m, n)));
      else EXPECT_EQ(mmt::bf16_decode(out(m, n)), m == 2 ? 128.0f : 256.0f);
    }
  }
}

}  // namespace
