// Block-scaled FP8 GEMMs (docs/NUMERICS.md section 3): dense, grouped contiguous / offsets / masked
// and routed. Every output is compared (a) bitwise with an independent implementation of the
// section-3 formula (exact integer partial sums, one rounding to float32, fmaf with the float32
// scale product, BF16 round-to-nearest-even) and (b) with a float64 product of the dequantized
// operands (relative Frobenius error < 1e-2).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.h"

namespace {

using mmt::GuardedOut;
using mmt::HostVec;
using mmt::last_error;
using mmt::make_tensor;

constexpr double kF64Tolerance = 1e-2;

// Operands: A [rows, K] with scales [rows, K/128]; B [E, N, K] with scales [E, N/128, K/128].
struct Operands {
  int64_t rows = 0, N = 0, K = 0, E = 0;
  HostVec<uint8_t> a, b;
  HostVec<float> sa, sb;
  const uint8_t* a_row(int64_t r) const { return a.data() + r * K; }
  const float* sa_row(int64_t r) const { return sa.data() + r * (K / 128); }
  const uint8_t* b_row(int64_t e, int64_t n) const { return b.data() + (e * N + n) * K; }
  const float* sb_row(int64_t e, int64_t n) const { return sb.data() + (e * (N / 128) + n / 128) * (K / 128); }
};

// Half of the cases use uniformly random FP8 codes (every code, extremes included), half use
// realistic data (normal values quantized by the reference quantizer).
Operands make_operands(mmt::Rng& rng, int64_t rows, int64_t N, int64_t K, int64_t E) {
  Operands o;
  o.rows = rows;
  o.N = N;
  o.K = K;
  o.E = E;
  if (rng.chance(0.5)) {
    o.a = mmt::random_fp8(rng, rows * K);
    o.sa = mmt::random_scales(rng, rows * (K / 128));
    o.b = mmt::random_fp8(rng, E * N * K);
    o.sb = mmt::random_scales(rng, E * (N / 128) * (K / 128));
  } else {
    auto x = mmt::random_normal(rng, rows * K, 2.0);
    o.a.resize(static_cast<std::size_t>(rows * K));
    o.sa.resize(static_cast<std::size_t>(rows * (K / 128)));
    mmt::ref_quantize_activations(x.data(), rows, K, false, o.a.data(), o.sa.data());
    auto w = mmt::random_normal(rng, E * N * K, 0.05);
    o.b.resize(static_cast<std::size_t>(E * N * K));
    o.sb.resize(static_cast<std::size_t>(E * (N / 128) * (K / 128)));
    mmt::ref_quantize_weights(w.data(), E, N, K, false, o.b.data(), o.sb.data());
  }
  return o;
}

// Checks one output row against both references; accumulates the float64 comparison.
struct RowChecker {
  const Operands& o;
  std::vector<double> f64_want, f64_got;
  int64_t bad_rows = 0;

  // got: N BF16 values of output row `r` computed with expert `e` (and routed weight w, if any).
  void check(const uint16_t* got, int64_t r, int64_t e, const float* w, const std::string& where) {
    std::vector<uint16_t> want(static_cast<std::size_t>(o.N));
    for (int64_t n = 0; n < o.N; ++n) {
      float acc = mmt::ref_gemm_acc(o.a_row(r), o.sa_row(r), o.b_row(e, n), o.sb_row(e, n), o.K);
      double f = mmt::ref_gemm_f64(o.a_row(r), o.sa_row(r), o.b_row(e, n), o.sb_row(e, n), o.K);
      if (w != nullptr) {
        acc = *w * acc;
        f *= static_cast<double>(*w);
      }
      want[static_cast<std::size_t>(n)] = mmt::bf16_encode(acc);
      f64_want.push_back(f);
      f64_got.push_back(static_cast<double>(mmt::bf16_decode(got[n])));
    }
    const auto eq = mmt::bf16_bits_equal(got, want.data(), o.N);
    if (!eq && bad_rows++ < 4) ADD_FAILURE() << where << " (row " << r << ", expert " << e << "): " << eq.message();
  }
  void finish() {
    EXPECT_EQ(bad_rows, 0) << "rows differing from the exact reference";
    EXPECT_LT(mmt::rel_error(f64_want, f64_got), kF64Tolerance) << "float64 sanity";
  }
};

::testing::AssertionResult row_is_zero(const uint16_t* row, int64_t N) {
  for (int64_t n = 0; n < N; ++n)
    if (row[n] != 0x0000) return ::testing::AssertionFailure() << "element " << n << " is 0x" << std::hex << row[n];
  return ::testing::AssertionSuccess();
}

std::string dims(int64_t M, int64_t N, int64_t K, int64_t E = 1) {
  return "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) + " E=" + std::to_string(E);
}

// ------------------------------------------------------------------------------------------------
// Dense
// ------------------------------------------------------------------------------------------------
struct DenseShape {
  int64_t M, N, K;
};
void PrintTo(const DenseShape& s, std::ostream* os) { *os << "M" << s.M << "_N" << s.N << "_K" << s.K; }

class GemmDense : public ::testing::TestWithParam<DenseShape> {};

TEST_P(GemmDense, MatchesReference) {
  const auto [M, N, K] = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  SCOPED_TRACE(dims(M, N, K));
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const Operands o = make_operands(rng, M, N, K, 1);
  const auto at = make_tensor(M ? o.a.data() : nullptr, MEGAMOE_DTYPE_FP8_E4M3, {M, K});
  const auto sat = make_tensor(M ? o.sa.data() : nullptr, MEGAMOE_DTYPE_FP32, {M, K / 128});
  const auto bt = make_tensor(o.b.data(), MEGAMOE_DTYPE_FP8_E4M3, {N, K});
  const auto sbt = make_tensor(o.sb.data(), MEGAMOE_DTYPE_FP32, {N / 128, K / 128});
  GuardedOut<uint16_t> d(M * N);
  const auto dt = make_tensor(d.data(), MEGAMOE_DTYPE_BF16, {M, N});
  ASSERT_EQ(megamoe_gemm_dense(ctx, &at, &sat, &bt, &sbt, &dt, nullptr), MEGAMOE_SUCCESS) << last_error();
  RowChecker rc{o, {}, {}, 0};
  for (int64_t m = 0; m < M; ++m) rc.check(d.data() + m * N, m, 0, nullptr, "dense");
  if (M > 0) rc.finish();
  EXPECT_TRUE(d.guard_intact()) << "wrote past d";
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmDense,
                         ::testing::Values(DenseShape{0, 128, 128}, DenseShape{1, 128, 128}, DenseShape{127, 128, 256},
                                           DenseShape{129, 256, 128}, DenseShape{1, 384, 640},
                                           DenseShape{33, 640, 384}, DenseShape{256, 512, 1024}));

// Many outputs of a two-block K: a float32-level deviation (a second rounding instead of fmaf, a
// double scale product) changes a BF16 output only rarely, so this needs many elements to see it.
TEST(GemmDenseExact, ManyOutputsCatchFloat32LevelDeviations) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const int64_t M = 1024, N = 1024, K = 256;
  auto a = mmt::random_fp8(rng, M * K);
  auto sa = mmt::random_scales(rng, M * K / 128);
  auto b = mmt::random_fp8(rng, N * K);
  auto sb = mmt::random_scales(rng, N / 128 * K / 128);
  const auto at = make_tensor(a.data(), MEGAMOE_DTYPE_FP8_E4M3, {M, K});
  const auto sat = make_tensor(sa.data(), MEGAMOE_DTYPE_FP32, {M, K / 128});
  const auto bt = make_tensor(b.data(), MEGAMOE_DTYPE_FP8_E4M3, {N, K});
  const auto sbt = make_tensor(sb.data(), MEGAMOE_DTYPE_FP32, {N / 128, K / 128});
  HostVec<uint16_t> d(static_cast<std::size_t>(M * N)), want(d.size());
  const auto dt = make_tensor(d.data(), MEGAMOE_DTYPE_BF16, {M, N});
  ASSERT_EQ(megamoe_gemm_dense(ctx, &at, &sat, &bt, &sbt, &dt, nullptr), MEGAMOE_SUCCESS) << last_error();
  mmt::ref_gemm_dense(a.data(), sa.data(), b.data(), sb.data(), M, N, K, want.data());
  EXPECT_TRUE(mmt::bf16_bits_equal(d.data(), want.data(), M * N));
}

// Hand-made values where the exact partial sum is not representable in float32 and the two
// roundings of section 3 (partial, then fmaf) are visible.
TEST(GemmDenseExact, PartialIsRoundedOnceAndScaleProductIsFloat) {
  mmt::ScopedContext ctx;
  const int64_t M = 1, N = 128, K = 256;
  HostVec<uint8_t> a(static_cast<std::size_t>(M * K), 0x00), b(static_cast<std::size_t>(N * K), 0x00);
  // Block 0: 448 * 448 (2^17.6) plus a smallest product 2^-18: exact sum needs ~36 bits.
  a[0] = 0x7E;
  b[0] = 0x7E;
  a[1] = 0x01;
  b[1] = 0x01;
  // Block 1: a product that is exactly representable.
  a[128] = 0x38;
  b[128] = 0x38;
  // Row 1 of B: large cancellation 448*448 - 448*448 + tiny.
  b[K + 0] = 0x7E;
  b[K + 2] = 0x7E;
  a[2] = 0xFE;
  b[K + 1] = 0x01;
  HostVec<float> sa = {1.1f, 0.3f}, sb = {0.7f, 3.0f};
  const auto at = make_tensor(a.data(), MEGAMOE_DTYPE_FP8_E4M3, {M, K});
  const auto sat = make_tensor(sa.data(), MEGAMOE_DTYPE_FP32, {M, 2});
  const auto bt = make_tensor(b.data(), MEGAMOE_DTYPE_FP8_E4M3, {N, K});
  const auto sbt = make_tensor(sb.data(), MEGAMOE_DTYPE_FP32, {1, 2});
  HostVec<uint16_t> d(static_cast<std::size_t>(M * N));
  const auto dt = make_tensor(d.data(), MEGAMOE_DTYPE_BF16, {M, N});
  ASSERT_EQ(megamoe_gemm_dense(ctx, &at, &sat, &bt, &sbt, &dt, nullptr), MEGAMOE_SUCCESS)
      << last_error();
  // Row 0: partial0 = float(200704 + 2^-18) = 200704; acc = fmaf(1.1f*0.7f, 200704, 0);
  // partial1 = 1; acc = fmaf(0.3f*3.0f, 1, acc).
  float acc = std::fma(1.1f * 0.7f, 200704.0f, 0.0f);
  acc = std::fma(0.3f * 3.0f, 1.0f, acc);
  EXPECT_EQ(d[0], mmt::bf16_encode(acc));
  // Row 1: partial0 = 448*448 - 448*448 + 2^-18 (exact sum, tiny) = 2^-18.
  float acc1 = std::fma(1.1f * 0.7f, std::ldexp(1.0f, -18), 0.0f);
  acc1 = std::fma(0.3f * 3.0f, 0.0f, acc1);
  EXPECT_EQ(d[1], mmt::bf16_encode(acc1));
  EXPECT_EQ(d[2], 0x0000);
}

// ------------------------------------------------------------------------------------------------
// Grouped contiguous (m_indices)
// ------------------------------------------------------------------------------------------------
enum class ContiguousLayout { Random, OneExpert, AllPadding, PartialLastBlock };

struct ContiguousCase {
  ContiguousLayout layout;
  int64_t blocks, N, K, E;
};
void PrintTo(const ContiguousCase& c, std::ostream* os) {
  const char* names[] = {"random", "one_expert", "all_padding", "partial_last_block"};
  *os << names[static_cast<int>(c.layout)] << "_blocks" << c.blocks << "_N" << c.N << "_K" << c.K << "_E" << c.E;
}

// m_indices: each aligned 128-row block holds rows of at most one expert plus -1 padding rows.
HostVec<int32_t> make_m_indices(mmt::Rng& rng, const ContiguousCase& c, int64_t M) {
  HostVec<int32_t> idx(static_cast<std::size_t>(M), -1);
  const int32_t single = static_cast<int32_t>(rng.range(0, c.E - 1));
  for (int64_t blk = 0; blk * 128 < M; ++blk) {
    const int64_t r0 = blk * 128, r1 = std::min(r0 + 128, M);
    int32_t e;
    int64_t fill;
    switch (c.layout) {
      case ContiguousLayout::OneExpert:
        e = single;
        fill = r1 - r0;
        break;
      case ContiguousLayout::AllPadding:
        e = -1;
        fill = 0;
        break;
      default:
        // Experts 0 and E-1 never get rows (experts with no rows), others at random.
        e = c.E > 2 ? static_cast<int32_t>(rng.range(1, c.E - 2)) : 0;
        fill = rng.range(1, r1 - r0);
        break;
    }
    for (int64_t r = r0; r < r0 + fill; ++r) idx[static_cast<std::size_t>(r)] = e;
    // Sometimes move a few padding rows into the middle of the segment.
    if (c.layout == ContiguousLayout::Random && fill < r1 - r0 && rng.chance(0.5)) {
      std::shuffle(idx.begin() + r0, idx.begin() + r1, rng.engine());
    }
  }
  return idx;
}

class GemmContiguous : public ::testing::TestWithParam<ContiguousCase> {};

TEST_P(GemmContiguous, MatchesReference) {
  const ContiguousCase c = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const int64_t M = c.layout == ContiguousLayout::PartialLastBlock ? c.blocks * 128 - 37 : c.blocks * 128;
  SCOPED_TRACE(dims(M, c.N, c.K, c.E) + " layout " + std::to_string(static_cast<int>(c.layout)));
  const Operands o = make_operands(rng, M, c.N, c.K, c.E);
  const HostVec<int32_t> idx = make_m_indices(rng, c, M);
  const auto at = make_tensor(o.a.data(), MEGAMOE_DTYPE_FP8_E4M3, {M, c.K});
  const auto sat = make_tensor(o.sa.data(), MEGAMOE_DTYPE_FP32, {M, c.K / 128});
  const auto bt = make_tensor(o.b.data(), MEGAMOE_DTYPE_FP8_E4M3, {c.E, c.N, c.K});
  const auto sbt = make_tensor(o.sb.data(), MEGAMOE_DTYPE_FP32, {c.E, c.N / 128, c.K / 128});
  const auto it = make_tensor(idx.data(), MEGAMOE_DTYPE_INT32, {M});
  GuardedOut<uint16_t> d(M * c.N);
  const auto dt = make_tensor(d.data(), MEGAMOE_DTYPE_BF16, {M, c.N});
  ASSERT_EQ(megamoe_gemm_grouped_contiguous(ctx, &at, &sat, &bt, &sbt, &it, &dt, nullptr), MEGAMOE_SUCCESS)
      << last_error();
  RowChecker rc{o, {}, {}, 0};
  int64_t computed = 0;
  for (int64_t m = 0; m < M; ++m) {
    const int32_t e = idx[static_cast<std::size_t>(m)];
    if (e < 0) {
      EXPECT_TRUE(row_is_zero(d.data() + m * c.N, c.N)) << "padding row " << m << " must be +0.0";
    } else {
      rc.check(d.data() + m * c.N, m, e, nullptr, "contiguous");
      ++computed;
    }
  }
  if (computed > 0) rc.finish();
  EXPECT_TRUE(d.guard_intact());
}

INSTANTIATE_TEST_SUITE_P(Layouts, GemmContiguous,
                         ::testing::Values(ContiguousCase{ContiguousLayout::Random, 6, 256, 256, 5},
                                           ContiguousCase{ContiguousLayout::Random, 3, 128, 128, 8},
                                           ContiguousCase{ContiguousLayout::OneExpert, 3, 128, 256, 4},
                                           ContiguousCase{ContiguousLayout::AllPadding, 2, 128, 128, 3},
                                           ContiguousCase{ContiguousLayout::PartialLastBlock, 2, 256, 128, 2},
                                           ContiguousCase{ContiguousLayout::Random, 1, 128, 128, 1}));

TEST(GemmContiguousEdge, ZeroRowsIsANoOp) {
  mmt::ScopedContext ctx;
  HostVec<uint8_t> b(2 * 128 * 128);
  HostVec<float> sb(2, 1.0f);
  const auto at = make_tensor(nullptr, MEGAMOE_DTYPE_FP8_E4M3, {0, 128});
  const auto sat = make_tensor(nullptr, MEGAMOE_DTYPE_FP32, {0, 1});
  const auto bt = make_tensor(b.data(), MEGAMOE_DTYPE_FP8_E4M3, {2, 128, 128});
  const auto sbt = make_tensor(sb.data(), MEGAMOE_DTYPE_FP32, {2, 1, 1});
  const auto it = make_tensor(nullptr, MEGAMOE_DTYPE_INT32, {0});
  const auto dt = make_tensor(nullptr, MEGAMOE_DTYPE_BF16, {0, 128});
  EXPECT_EQ(megamoe_gemm_grouped_contiguous(ctx, &at, &sat, &bt, &sbt, &it, &dt, nullptr), MEGAMOE_SUCCESS)
      << last_error();
}

// ------------------------------------------------------------------------------------------------
// Grouped offsets
// ------------------------------------------------------------------------------------------------
template <typename Index>
void run_offsets_case(megamoe_dtype_t index_dtype, int64_t M, int64_t N, int64_t K, int64_t E, bool leave_gaps,
                      bool all_empty) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  SCOPED_TRACE(dims(M, N, K, E) + (index_dtype == MEGAMOE_DTYPE_INT64 ? " int64" : " int32"));
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const Operands o = make_operands(rng, M, N, K, E);
  // Non-decreasing offsets within [0, M], with empty segments and (optionally) rows before the
  // first and after the last segment.
  std::vector<int64_t> cuts(static_cast<std::size_t>(E + 1));
  const int64_t lo = leave_gaps ? rng.range(0, std::min<int64_t>(M, 5)) : 0;
  const int64_t hi = leave_gaps ? M - rng.range(0, std::min<int64_t>(M - lo, 7)) : M;
  for (auto& v : cuts) v = all_empty ? lo : rng.range(lo, hi);
  std::sort(cuts.begin(), cuts.end());
  cuts.front() = lo;
  if (!all_empty) cuts.back() = hi;
  if (E >= 3 && !all_empty) cuts[1] = cuts[0];  // expert 0 is empty
  HostVec<Index> offsets(cuts.size());
  for (std::size_t i = 0; i < cuts.size(); ++i) offsets[i] = static_cast<Index>(cuts[i]);

  const auto at = make_tensor(o.a.data(), MEGAMOE_DTYPE_FP8_E4M3, {M, K});
  const auto sat = make_tensor(o.sa.data(), MEGAMOE_DTYPE_FP32, {M, K / 128});
  const auto bt = make_tensor(o.b.data(), MEGAMOE_DTYPE_FP8_E4M3, {E, N, K});
  const auto sbt = make_tensor(o.sb.data(), MEGAMOE_DTYPE_FP32, {E, N / 128, K / 128});
  const auto ot = make_tensor(offsets.data(), index_dtype, {E + 1});
  GuardedOut<uint16_t> d(M * N);
  const auto dt = make_tensor(d.data(), MEGAMOE_DTYPE_BF16, {M, N});
  ASSERT_EQ(megamoe_gemm_grouped_offsets(ctx, &at, &sat, &bt, &sbt, &ot, &dt, nullptr), MEGAMOE_SUCCESS)
      << last_error();
  RowChecker rc{o, {}, {}, 0};
  int64_t computed = 0;
  for (int64_t m = 0; m < M; ++m) {
    int64_t e = -1;
    for (int64_t g = 0; g < E; ++g)
      if (cuts[static_cast<std::size_t>(g)] <= m && m < cuts[static_cast<std::size_t>(g + 1)]) e = g;
    if (e < 0) {
      EXPECT_TRUE(row_is_zero(d.data() + m * N, N)) << "row " << m << " outside every segment must be +0.0";
    } else {
      rc.check(d.data() + m * N, m, e, nullptr, "offsets");
      ++computed;
    }
  }
  if (computed > 0) rc.finish();
  EXPECT_TRUE(d.guard_intact());
}

TEST(GemmOffsets, Int32WithGapsAndEmptySegments) { run_offsets_case<int32_t>(MEGAMOE_DTYPE_INT32, 300, 256, 256, 6, true, false); }
TEST(GemmOffsets, Int64WithGapsAndEmptySegments) { run_offsets_case<int64_t>(MEGAMOE_DTYPE_INT64, 129, 128, 384, 4, true, false); }
TEST(GemmOffsets, Int32CoveringAllRows) { run_offsets_case<int32_t>(MEGAMOE_DTYPE_INT32, 127, 128, 128, 3, false, false); }
TEST(GemmOffsets, Int64OneExpert) { run_offsets_case<int64_t>(MEGAMOE_DTYPE_INT64, 1, 128, 128, 1, false, false); }
TEST(GemmOffsets, ZeroRows) { run_offsets_case<int64_t>(MEGAMOE_DTYPE_INT64, 0, 128, 128, 2, false, false); }
TEST(GemmOffsets, AllSegmentsEmptyGivesZeros) { run_offsets_case<int32_t>(MEGAMOE_DTYPE_INT32, 50, 128, 128, 4, true, true); }

// ------------------------------------------------------------------------------------------------
// Grouped masked
// ------------------------------------------------------------------------------------------------
TEST(GemmMasked, WritesValidRowsAndLeavesOthersUntouched) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  for (const auto& shape : {std::vector<int64_t>{5, 130, 256, 256}, std::vector<int64_t>{3, 1, 128, 128},
                            std::vector<int64_t>{2, 64, 128, 384}, std::vector<int64_t>{2, 0, 128, 128}}) {
    const int64_t E = shape[0], max_m = shape[1], N = shape[2], K = shape[3];
    SCOPED_TRACE(dims(max_m, N, K, E));
    const Operands o = make_operands(rng, E * max_m, N, K, E);
    HostVec<int32_t> masked(static_cast<std::size_t>(E));
    for (int64_t e = 0; e < E; ++e) masked[static_cast<std::size_t>(e)] = static_cast<int32_t>(rng.range(0, max_m));
    masked[0] = 0;
    if (E > 1) masked[1] = static_cast<int32_t>(max_m);
    const auto at = make_tensor(o.a.data(), MEGAMOE_DTYPE_FP8_E4M3, {E, max_m, K});
    const auto sat = make_tensor(o.sa.data(), MEGAMOE_DTYPE_FP32, {E, max_m, K / 128});
    const auto bt = make_tensor(o.b.data(), MEGAMOE_DTYPE_FP8_E4M3, {E, N, K});
    const auto sbt = make_tensor(o.sb.data(), MEGAMOE_DTYPE_FP32, {E, N / 128, K / 128});
    const auto mt = make_tensor(masked.data(), MEGAMOE_DTYPE_INT32, {E});
    std::vector<GuardedOut<uint16_t>> outs;
    for (int64_t expected_m : {int64_t{0}, int64_t{1}, max_m / 2 + 1, max_m}) {
      SCOPED_TRACE("expected_m " + std::to_string(expected_m));
      GuardedOut<uint16_t> d(E * max_m * N);
      const auto dt = make_tensor(d.data(), MEGAMOE_DTYPE_BF16, {E, max_m, N});
      ASSERT_EQ(megamoe_gemm_grouped_masked(ctx, &at, &sat, &bt, &sbt, &mt, expected_m, &dt, nullptr),
                MEGAMOE_SUCCESS)
          << last_error();
      RowChecker rc{o, {}, {}, 0};
      int64_t computed = 0;
      for (int64_t e = 0; e < E; ++e) {
        for (int64_t m = 0; m < max_m; ++m) {
          const int64_t row = e * max_m + m;
          if (m < masked[static_cast<std::size_t>(e)]) {
            rc.check(d.data() + row * N, row, e, nullptr, "masked");
            ++computed;
          } else {
            EXPECT_TRUE(mmt::all_bytes_are(d.data() + row * N, static_cast<std::size_t>(N)))
                << "row " << m << " of group " << e << " (masked_m " << masked[static_cast<std::size_t>(e)]
                << ") must be left untouched";
          }
        }
      }
      if (computed > 0) rc.finish();
      EXPECT_TRUE(d.guard_intact());
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Routed
// ------------------------------------------------------------------------------------------------
struct RoutedCase {
  int64_t T, max_tokens, k, E, N, K;
  bool int64_idx, weights, num_tokens_tensor;
  uint32_t plan_flags;
};

std::string routed_name(const RoutedCase& c) {
  return "T=" + std::to_string(c.T) + " max_tokens=" + std::to_string(c.max_tokens) + " k=" + std::to_string(c.k) +
         " E=" + std::to_string(c.E) + " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) +
         (c.int64_idx ? " int64" : " int32") + (c.weights ? " weights" : " no-weights") +
         (c.num_tokens_tensor ? " num_tokens" : "") + " flags=" + std::to_string(c.plan_flags);
}

void PrintTo(const RoutedCase& c, std::ostream* os) {
  *os << "T" << c.T << "_max" << c.max_tokens << "_k" << c.k << "_E" << c.E << "_N" << c.N << "_K" << c.K
      << (c.int64_idx ? "_i64" : "_i32") << (c.weights ? "_w" : "_now") << (c.num_tokens_tensor ? "_nt" : "")
      << (c.plan_flags ? "_es" : "");
}

class GemmRouted : public ::testing::TestWithParam<RoutedCase> {};

TEST_P(GemmRouted, MatchesReference) {
  const RoutedCase c = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  SCOPED_TRACE(routed_name(c));
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const int64_t T = c.T, k = c.k, N = c.N, K = c.K, E = c.E;
  const Operands o = make_operands(rng, T, N, K, E);
  // Routing: random experts, dropped slots, duplicate experts within a token.
  std::vector<int64_t> idx(static_cast<std::size_t>(T * k));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < k; ++j) {
      int64_t e = rng.range(0, E - 1);
      if (rng.chance(0.15)) e = -1;
      if (j > 0 && rng.chance(0.15)) e = idx[static_cast<std::size_t>(t * k + j - 1)];  // duplicate (or -1 again)
      idx[static_cast<std::size_t>(t * k + j)] = e;
    }
  if (T > 0) {
    for (int64_t j = 0; j < k; ++j) idx[static_cast<std::size_t>(j)] = -1;  // token 0 fully dropped
  }
  HostVec<int32_t> idx32(idx.size());
  HostVec<int64_t> idx64(idx.size());
  for (std::size_t i = 0; i < idx.size(); ++i) {
    idx32[i] = static_cast<int32_t>(idx[i]);
    idx64[i] = idx[i];
  }
  HostVec<float> w(static_cast<std::size_t>(T * k));
  for (auto& v : w) v = static_cast<float>(rng.uniform(-1.5, 1.5));
  const int64_t valid = c.num_tokens_tensor ? (T > 0 ? rng.range(0, T) : 0) : T;
  HostVec<int32_t> nt = {static_cast<int32_t>(valid)};

  megamoe_routed_plan_t plan = nullptr;
  ASSERT_EQ(megamoe_routed_plan_create(ctx, c.max_tokens, static_cast<int32_t>(k), static_cast<int32_t>(E), N, K,
                                       c.plan_flags, &plan),
            MEGAMOE_SUCCESS)
      << last_error();
  const auto at = make_tensor(T ? o.a.data() : nullptr, MEGAMOE_DTYPE_FP8_E4M3, {T, K});
  const auto sat = make_tensor(T ? o.sa.data() : nullptr, MEGAMOE_DTYPE_FP32, {T, K / 128});
  const auto bt = make_tensor(o.b.data(), MEGAMOE_DTYPE_FP8_E4M3, {E, N, K});
  const auto sbt = make_tensor(o.sb.data(), MEGAMOE_DTYPE_FP32, {E, N / 128, K / 128});
  const auto it = c.int64_idx ? make_tensor(T ? idx64.data() : nullptr, MEGAMOE_DTYPE_INT64, {T, k})
                              : make_tensor(T ? idx32.data() : nullptr, MEGAMOE_DTYPE_INT32, {T, k});
  const auto wt = make_tensor(T ? w.data() : nullptr, MEGAMOE_DTYPE_FP32, {T, k});
  const auto ntt = make_tensor(nt.data(), MEGAMOE_DTYPE_INT32, {1});
  GuardedOut<uint16_t> d(T * k * N);
  const auto dt = make_tensor(T ? d.data() : nullptr, MEGAMOE_DTYPE_BF16, {T, k, N});
  const megamoe_status_t st = megamoe_gemm_routed(plan, &at, &sat, &bt, &sbt, &it, c.weights ? &wt : nullptr,
                                                  c.num_tokens_tensor ? &ntt : nullptr, &dt, nullptr);
  EXPECT_EQ(megamoe_routed_plan_destroy(plan), MEGAMOE_SUCCESS);
  ASSERT_EQ(st, MEGAMOE_SUCCESS) << last_error();

  RowChecker rc{o, {}, {}, 0};
  int64_t computed = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const uint16_t* row = d.data() + (t * k + j) * N;
      const int64_t e = idx[static_cast<std::size_t>(t * k + j)];
      if (t >= valid) {
        EXPECT_TRUE(mmt::all_bytes_are(row, static_cast<std::size_t>(N)))
            << "token " << t << " >= num_tokens " << valid << " must be left untouched";
      } else if (e < 0) {
        EXPECT_TRUE(row_is_zero(row, N)) << "dropped slot (" << t << ", " << j << ") must be +0.0";
      } else {
        rc.check(row, t, e, c.weights ? &w[static_cast<std::size_t>(t * k + j)] : nullptr, "routed slot " + std::to_string(j));
        ++computed;
      }
    }
  }
  if (computed > 0) rc.finish();
  EXPECT_TRUE(d.guard_intact());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, GemmRouted,
    ::testing::Values(RoutedCase{37, 64, 4, 6, 256, 256, false, true, false, MEGAMOE_PLAN_DEFAULT},
                      RoutedCase{37, 37, 4, 6, 128, 384, true, true, false, MEGAMOE_PLAN_DEFAULT},
                      RoutedCase{20, 32, 2, 3, 128, 128, false, false, false, MEGAMOE_PLAN_DEFAULT},
                      RoutedCase{20, 32, 2, 3, 128, 128, true, false, false, MEGAMOE_PLAN_EXPERT_SPECIALIZATION},
                      RoutedCase{9, 16, 16, 20, 128, 128, true, true, false, MEGAMOE_PLAN_DEFAULT},
                      RoutedCase{9, 16, 16, 4, 128, 128, false, true, false, MEGAMOE_PLAN_EXPERT_SPECIALIZATION},
                      RoutedCase{1, 1, 1, 1, 128, 128, false, true, false, MEGAMOE_PLAN_DEFAULT},
                      RoutedCase{0, 8, 2, 2, 128, 128, false, true, false, MEGAMOE_PLAN_DEFAULT},
                      RoutedCase{0, 8, 2, 2, 128, 128, true, true, true, MEGAMOE_PLAN_DEFAULT},
                      RoutedCase{40, 48, 3, 5, 256, 128, false, true, true, MEGAMOE_PLAN_DEFAULT},
                      RoutedCase{40, 48, 3, 5, 256, 128, true, false, true, MEGAMOE_PLAN_EXPERT_SPECIALIZATION},
                      RoutedCase{129, 200, 2, 4, 128, 256, false, true, false, MEGAMOE_PLAN_DEFAULT}));

// A plan can be reused with different T (<= max_tokens) and routings.
TEST(GemmRoutedPlan, ReusableAcrossCalls) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const int64_t k = 2, E = 3, N = 128, K = 128;
  megamoe_routed_plan_t plan = nullptr;
  ASSERT_EQ(megamoe_routed_plan_create(ctx, 16, 2, 3, N, K, 0, &plan), MEGAMOE_SUCCESS) << last_error();
  for (int64_t T : {16, 3, 0, 16, 1}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    const Operands o = make_operands(rng, T, N, K, E);
    HostVec<int32_t> idx(static_cast<std::size_t>(T * k));
    for (auto& v : idx) v = static_cast<int32_t>(rng.range(-1, E - 1));
    GuardedOut<uint16_t> d(T * k * N);
    const auto at = make_tensor(o.a.data(), MEGAMOE_DTYPE_FP8_E4M3, {T, K});
    const auto sat = make_tensor(o.sa.data(), MEGAMOE_DTYPE_FP32, {T, K / 128});
    const auto bt = make_tensor(o.b.data(), MEGAMOE_DTYPE_FP8_E4M3, {E, N, K});
    const auto sbt = make_tensor(o.sb.data(), MEGAMOE_DTYPE_FP32, {E, N / 128, K / 128});
    const auto it = make_tensor(idx.data(), MEGAMOE_DTYPE_INT32, {T, k});
    const auto dt = make_tensor(d.data(), MEGAMOE_DTYPE_BF16, {T, k, N});
    ASSERT_EQ(megamoe_gemm_routed(plan, &at, &sat, &bt, &sbt, &it, nullptr, nullptr, &dt, nullptr), MEGAMOE_SUCCESS)
        << last_error();
    RowChecker rc{o, {}, {}, 0};
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < k; ++j) {
        const int32_t e = idx[static_cast<std::size_t>(t * k + j)];
        if (e < 0) {
          EXPECT_TRUE(row_is_zero(d.data() + (t * k + j) * N, N));
        } else {
          rc.check(d.data() + (t * k + j) * N, t, e, nullptr, "routed");
        }
      }
    EXPECT_EQ(rc.bad_rows, 0);
  }
  EXPECT_EQ(megamoe_routed_plan_destroy(plan), MEGAMOE_SUCCESS);
}

// Concurrent calls on one plan are serialized by the library (docs/API.md).
TEST(GemmRoutedPlan, ConcurrentCallsOnOnePlan) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const int64_t T = 32, k = 2, E = 4, N = 128, K = 256;
  megamoe_routed_plan_t plan = nullptr;
  ASSERT_EQ(megamoe_routed_plan_create(ctx, T, 2, 4, N, K, 0, &plan), MEGAMOE_SUCCESS) << last_error();
  constexpr int kThreads = 4;
  std::vector<Operands> ops;
  std::vector<HostVec<int32_t>> idx(kThreads);
  std::vector<HostVec<uint16_t>> d(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    ops.push_back(make_operands(rng, T, N, K, E));
    for (int64_t s = 0; s < T * k; ++s) idx[static_cast<std::size_t>(i)].push_back(static_cast<int32_t>(rng.range(-1, E - 1)));
    d[static_cast<std::size_t>(i)].resize(static_cast<std::size_t>(T * k * N));
  }
  std::vector<megamoe_status_t> status(kThreads, MEGAMOE_ERROR_INTERNAL);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const auto u = static_cast<std::size_t>(i);
      const Operands& o = ops[u];
      const auto at = make_tensor(o.a.data(), MEGAMOE_DTYPE_FP8_E4M3, {T, K});
      const auto sat = make_tensor(o.sa.data(), MEGAMOE_DTYPE_FP32, {T, K / 128});
      const auto bt = make_tensor(o.b.data(), MEGAMOE_DTYPE_FP8_E4M3, {E, N, K});
      const auto sbt = make_tensor(o.sb.data(), MEGAMOE_DTYPE_FP32, {E, N / 128, K / 128});
      const auto it = make_tensor(idx[u].data(), MEGAMOE_DTYPE_INT32, {T, k});
      const auto dt = make_tensor(d[u].data(), MEGAMOE_DTYPE_BF16, {T, k, N});
      for (int rep = 0; rep < 4; ++rep) {
        status[u] = megamoe_gemm_routed(plan, &at, &sat, &bt, &sbt, &it, nullptr, nullptr, &dt, nullptr);
        if (status[u] != MEGAMOE_SUCCESS) return;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    const auto u = static_cast<std::size_t>(i);
    EXPECT_EQ(status[u], MEGAMOE_SUCCESS);
    RowChecker rc{ops[u], {}, {}, 0};
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < k; ++j) {
        const int32_t e = idx[u][static_cast<std::size_t>(t * k + j)];
        const uint16_t* row = d[u].data() + (t * k + j) * N;
        if (e < 0) {
          EXPECT_TRUE(row_is_zero(row, N));
        } else {
          rc.check(row, t, e, nullptr, "thread " + std::to_string(i));
        }
      }
    EXPECT_EQ(rc.bad_rows, 0);
  }
  EXPECT_EQ(megamoe_routed_plan_destroy(plan), MEGAMOE_SUCCESS);
}

}  // namespace
