// GPU parity of the block-scaled GEMMs (docs/NUMERICS.md section 3) against the CPU backend:
// identical FP8 inputs, every BF16 output within 1 ulp or within the tensor-core accumulation bound
// of gpu/gpu_support.h (the counts of both are printed), outputs poisoned
// before every launch, every tile configuration (MEGAMOE_CUDA_GEMM_TILE) and the heuristic's own
// choice. Edge cases: M = 0, 1, 127, 129; experts without rows; all rows on one expert; -1 padding
// rows (also leading ones inside a block); masked_m = 0 groups; 1024 experts.
#include <algorithm>
#include <cmath>
#include <array>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "gpu/gpu_support.h"

namespace {

using mmt::HostVec;
using mmt_gpu::Contexts;
using mmt_gpu::DeviceBuffer;
using mmt_gpu::TileOverride;
using mmt_gpu::to_device;

struct Operands {
  int64_t rows = 0, n = 0, k = 0, e = 0;
  HostVec<uint8_t> a, b;
  HostVec<float> sa, sb;
};

Operands make_operands(mmt::Rng& rng, int64_t rows, int64_t n, int64_t k, int64_t e) {
  Operands o;
  o.rows = rows, o.n = n, o.k = k, o.e = e;
  if (rng.chance(0.5)) {
    // Every finite code, scales of varied magnitude.
    o.a = mmt::random_fp8(rng, rows * k);
    o.sa = mmt::random_scales(rng, rows * (k / 128));
    o.b = mmt::random_fp8(rng, e * n * k);
    o.sb = mmt::random_scales(rng, e * (n / 128) * (k / 128));
  } else {
    // Realistic: normal activations and weights through the reference quantizers.
    auto x = mmt::random_normal(rng, rows * k, 2.0);
    o.a.resize(static_cast<std::size_t>(rows * k));
    o.sa.resize(static_cast<std::size_t>(rows * (k / 128)));
    mmt::ref_quantize_activations(x.data(), rows, k, false, o.a.data(), o.sa.data());
    auto w = mmt::random_normal(rng, e * n * k, 0.05);
    o.b.resize(static_cast<std::size_t>(e * n * k));
    o.sb.resize(static_cast<std::size_t>(e * (n / 128) * (k / 128)));
    mmt::ref_quantize_weights(w.data(), e, n, k, false, o.b.data(), o.sb.data());
  }
  return o;
}

// The operands on the device, with host and device descriptors.
struct Bound {
  std::unique_ptr<DeviceBuffer> a, sa, b, sb;
  megamoe_tensor_t ha, hsa, hb, hsb;  // host (CPU backend)
  megamoe_tensor_t da, dsa, db, dsb;  // device (CUDA backend)
};

// a_shape: [rows, K] or [E, max_m, K]; grouped B is [E, N, K].
Bound bind(Contexts& c, const Operands& o, const std::vector<int64_t>& a_shape, bool grouped_b) {
  Bound r;
  std::vector<int64_t> sa_shape = a_shape;
  sa_shape.back() = o.k / 128;
  const std::vector<int64_t> b_shape = grouped_b ? std::vector<int64_t>{o.e, o.n, o.k} : std::vector<int64_t>{o.n, o.k};
  const std::vector<int64_t> sb_shape =
      grouped_b ? std::vector<int64_t>{o.e, o.n / 128, o.k / 128} : std::vector<int64_t>{o.n / 128, o.k / 128};
  r.a = to_device(c.gpu, o.a);
  r.sa = to_device(c.gpu, o.sa);
  r.b = to_device(c.gpu, o.b);
  r.sb = to_device(c.gpu, o.sb);
  r.ha = mmt::make_tensor(o.a.data(), MEGAMOE_DTYPE_FP8_E4M3, a_shape);
  r.hsa = mmt::make_tensor(o.sa.data(), MEGAMOE_DTYPE_FP32, sa_shape);
  r.hb = mmt::make_tensor(o.b.data(), MEGAMOE_DTYPE_FP8_E4M3, b_shape);
  r.hsb = mmt::make_tensor(o.sb.data(), MEGAMOE_DTYPE_FP32, sb_shape);
  r.da = r.a->tensor(MEGAMOE_DTYPE_FP8_E4M3, a_shape);
  r.dsa = r.sa->tensor(MEGAMOE_DTYPE_FP32, sa_shape);
  r.db = r.b->tensor(MEGAMOE_DTYPE_FP8_E4M3, b_shape);
  r.dsb = r.sb->tensor(MEGAMOE_DTYPE_FP32, sb_shape);
  return r;
}

// Per output: sum_b |sa*sb| * sum_{k in b} |a_k * b_k| (float64), the size of what the tensor cores
// added; 0 for rows of no expert. expert_of(row) gives the row's expert or -1.
template <typename ExpertOf>
std::vector<double> magnitudes(const Operands& o, int64_t n_out, ExpertOf&& expert_of) {
  const int64_t kb = o.k / 128;
  std::vector<float> abs_a(static_cast<std::size_t>(o.rows * o.k)), abs_b(static_cast<std::size_t>(o.e * o.n * o.k));
  for (std::size_t i = 0; i < abs_a.size(); ++i) abs_a[i] = std::fabs(mmt::fp8_decode(o.a[i]));
  for (std::size_t i = 0; i < abs_b.size(); ++i) abs_b[i] = std::fabs(mmt::fp8_decode(o.b[i]));
  std::vector<double> mag(static_cast<std::size_t>(o.rows * n_out), 0.0);
  for (int64_t r = 0; r < o.rows; ++r) {
    const int64_t e = expert_of(r);
    if (e < 0) continue;
    for (int64_t c = 0; c < n_out; ++c) {
      double total = 0.0;
      const float* a = abs_a.data() + r * o.k;
      const float* b = abs_b.data() + (e * o.n + c) * o.k;
      for (int64_t blk = 0; blk < kb; ++blk) {
        double s = 0.0;
        for (int64_t k = blk * 128; k < blk * 128 + 128; ++k) s += static_cast<double>(a[k]) * b[k];
        const double scale = static_cast<double>(o.sa[static_cast<std::size_t>(r * kb + blk)]) *
                             o.sb[static_cast<std::size_t>((e * (o.n / 128) + c / 128) * kb + blk)];
        total += std::fabs(scale) * s;
      }
      mag[static_cast<std::size_t>(r * n_out + c)] = total;
    }
  }
  return mag;
}

// Runs `launch(d)` on the GPU for every tile, output poisoned before each launch, and compares the
// rows where `compare_row(r)` with `ref` (bounds of gpu_support.h) and the others with the poison
// (untouched).
template <typename Launch, typename RowFilter>
void for_every_tile(DeviceBuffer& d, const HostVec<uint16_t>& ref, const std::vector<double>& mag, int64_t rows,
                    int64_t n, Launch&& launch, RowFilter&& compare_row,
                    const std::vector<std::string>& tiles = mmt_gpu::all_tiles()) {
  for (const std::string& tile : tiles) {
    SCOPED_TRACE("tile " + (tile.empty() ? std::string("heuristic") : tile));
    TileOverride force(tile);
    d.poison();
    const megamoe_status_t st = launch();
    ASSERT_EQ(st, MEGAMOE_SUCCESS) << megamoe_last_error_message();
    const auto got = d.download<uint16_t>(rows * n);
    HostVec<uint16_t> got_cmp, ref_cmp;
    std::vector<double> mag_cmp;
    int64_t touched_rows = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const uint16_t* g = got.data() + r * n;
      if (compare_row(r)) {
        got_cmp.insert(got_cmp.end(), g, g + n);
        ref_cmp.insert(ref_cmp.end(), ref.data() + r * n, ref.data() + (r + 1) * n);
        mag_cmp.insert(mag_cmp.end(), mag.begin() + r * n, mag.begin() + (r + 1) * n);
      } else if (!mmt::all_bytes_are(g, static_cast<std::size_t>(n))) {
        ++touched_rows;
      }
    }
    EXPECT_EQ(touched_rows, 0) << "rows that must stay untouched were written";
    const auto rep = mmt_gpu::compare_bf16(got_cmp.data(), ref_cmp.data(), mag_cmp.data(),
                                           static_cast<int64_t>(got_cmp.size()), n);
    EXPECT_EQ(rep.violations, 0) << rep.violations << " of " << rep.count
                                 << " outputs beyond 1 BF16 ulp and beyond the tensor-core bound:\n"
                                 << rep.first;
    // The tensor-core bound is loose on purpose (it covers cancelling blocks); a systematic error,
    // such as one K block scaled wrongly, would instead push most outputs past 1 ulp. Cancellation
    // moves about 1% of random outputs past it, so more than 5% means a bug.
    EXPECT_LE(rep.beyond_ulp, rep.count / 20 + 2)
        << "too many outputs beyond 1 BF16 ulp for tensor-core rounding alone";
    std::printf("    [tile %-9s] %lld outputs: %lld bitwise equal, %lld beyond 1 ulp (max |err|/magnitude %.3g), "
                "%lld violations\n",
                tile.empty() ? "heuristic" : tile.c_str(), static_cast<long long>(rep.count),
                static_cast<long long>(rep.exact), static_cast<long long>(rep.beyond_ulp), rep.max_ratio,
                static_cast<long long>(rep.violations));
  }
}

class GpuGemm : public mmt_gpu::GpuTest {};

// One dense problem: its operands on both backends, the CPU reference, the GPU output buffer and the
// magnitudes of the tensor-core bound.
struct DenseCase {
  int64_t m, n, k;
  Operands o;
  Bound t;
  HostVec<uint16_t> ref;
  std::vector<double> mag;
  DeviceBuffer d;
  megamoe_tensor_t dd;

  DenseCase(Contexts& c, mmt::Rng& rng, int64_t m_, int64_t n_, int64_t k_)
      : m(m_), n(n_), k(k_), o(make_operands(rng, m_, n_, k_, 1)), t(bind(c, o, {m_, k_}, false)),
        ref(static_cast<std::size_t>(m_ * n_)), mag(magnitudes(o, n_, [](int64_t) { return int64_t{0}; })),
        d(c.gpu, m_ * n_ * 2), dd(d.tensor(MEGAMOE_DTYPE_BF16, {m_, n_})) {
    const auto hd = mmt::make_tensor(ref.data(), MEGAMOE_DTYPE_BF16, {m, n});
    EXPECT_EQ(megamoe_gemm_dense(c.cpu, &t.ha, &t.hsa, &t.hb, &t.hsb, &hd, nullptr), MEGAMOE_SUCCESS)
        << megamoe_last_error_message();
  }
  megamoe_status_t run(Contexts& c) { return megamoe_gemm_dense(c.gpu, &t.da, &t.dsa, &t.db, &t.dsb, &dd, nullptr); }
  void check_tiles(Contexts& c, const std::vector<std::string>& tiles) {
    for_every_tile(d, ref, mag, m, n, [&] { return run(c); }, [](int64_t) { return true; }, tiles);
  }
};

TEST_F(GpuGemm, Dense) {
  MMT_SEED_TRACE(seed_);
  mmt::Rng rng(seed_);
  const std::vector<std::array<int64_t, 3>> shapes = {
      {1, 128, 128}, {127, 256, 640}, {129, 384, 1024}, {300, 128, 256}, {64, 512, 2048}, {256, 256, 7168},
      {129, 256, 65536}};  // the largest K accepted: 512 K blocks of scales staged through the pipeline
  for (const auto& [m, n, k] : shapes) {
    SCOPED_TRACE(testing::Message() << "dense M=" << m << " N=" << n << " K=" << k);
    std::printf("  dense M=%lld N=%lld K=%lld\n", static_cast<long long>(m), static_cast<long long>(n),
                static_cast<long long>(k));
    DenseCase dc(c(), rng, m, n, k);
    dc.check_tiles(c(), mmt_gpu::all_tiles());
  }
}

// Split-K over a cluster (cuda/sm90/gemm/split_k.cuh), forced as "BMxBNx1xS" on every tile that can
// split, including more splits than K blocks (ranks with no K block add zeros) and M not a multiple
// of the tile; then the heuristic's own split of a decode-sized shape, run again: bitwise equal.
TEST_F(GpuGemm, DenseSplitK) {
  MMT_SEED_TRACE(seed_);
  mmt::Rng rng(seed_);
  const std::vector<std::string> forced = {"128x128x1x2", "128x128x1x4", "128x128x1x8", "128x256x1x8", "128x64x1x8",
                                           "128x32x1x4",  "64x128x1x8",  "64x64x1x2",   "64x64x1x8",   "64x32x1x4"};
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 256, 128}, {129, 512, 1024}, {64, 256, 3072}, {200, 512, 7168}};
  for (const auto& [m, n, k] : shapes) {
    SCOPED_TRACE(testing::Message() << "split-K M=" << m << " N=" << n << " K=" << k);
    std::printf("  split-K M=%lld N=%lld K=%lld\n", static_cast<long long>(m), static_cast<long long>(n),
                static_cast<long long>(k));
    DenseCase dc(c(), rng, m, n, k);
    dc.check_tiles(c(), forced);
  }
  // The heuristic splits M = 64, N = 2048, K = 7168 (tests/native/test_gemm_variants.cpp): checked, and
  // deterministic (the ranks' partial tiles are summed in rank order whichever finishes first).
  DenseCase dc(c(), rng, 64, 2048, 7168);
  dc.check_tiles(c(), {""});
  const auto first = dc.d.download<uint16_t>(dc.m * dc.n);
  for (int run = 0; run < 3; ++run) {
    dc.d.poison();
    MMT_OK(dc.run(c()));
    const auto again = dc.d.download<uint16_t>(dc.m * dc.n);
    ASSERT_TRUE(std::equal(first.begin(), first.end(), again.begin())) << "split-K result differs between runs";
  }
}

TEST_F(GpuGemm, KAboveTheLimitIsRefused) {
  constexpr int64_t k = 65536 + 128;
  DeviceBuffer a(c().gpu, k), sa(c().gpu, k / 128 * 4), b(c().gpu, 128 * k), sb(c().gpu, k / 128 * 4), d(c().gpu, 256);
  d.poison();
  const auto at = a.tensor(MEGAMOE_DTYPE_FP8_E4M3, {1, k});
  const auto sat = sa.tensor(MEGAMOE_DTYPE_FP32, {1, k / 128});
  const auto bt = b.tensor(MEGAMOE_DTYPE_FP8_E4M3, {128, k});
  const auto sbt = sb.tensor(MEGAMOE_DTYPE_FP32, {1, k / 128});
  const auto dt = d.tensor(MEGAMOE_DTYPE_BF16, {1, 128});
  EXPECT_EQ(megamoe_gemm_dense(c().gpu, &at, &sat, &bt, &sbt, &dt, nullptr), MEGAMOE_ERROR_UNSUPPORTED);
  EXPECT_NE(std::string(megamoe_last_error_message()).find("K <= 65536"), std::string::npos) << megamoe_last_error_message();
  const auto bytes = d.download<uint8_t>(256);
  EXPECT_TRUE(mmt::all_bytes_are(bytes.data(), bytes.size())) << "a refused call wrote its output";
}

TEST_F(GpuGemm, DenseZeroRows) {
  DeviceBuffer a(c().gpu, 16), sa(c().gpu, 16), b(c().gpu, 128 * 128), sb(c().gpu, 16), d(c().gpu, 64);
  d.poison();
  const auto at = a.tensor(MEGAMOE_DTYPE_FP8_E4M3, {0, 128});
  const auto sat = sa.tensor(MEGAMOE_DTYPE_FP32, {0, 1});
  const auto bt = b.tensor(MEGAMOE_DTYPE_FP8_E4M3, {128, 128});
  const auto sbt = sb.tensor(MEGAMOE_DTYPE_FP32, {1, 1});
  const auto dt = d.tensor(MEGAMOE_DTYPE_BF16, {0, 128});
  MMT_OK(megamoe_gemm_dense(c().gpu, &at, &sat, &bt, &sbt, &dt, nullptr));
  const auto bytes = d.download<uint8_t>(64);
  EXPECT_TRUE(mmt::all_bytes_are(bytes.data(), bytes.size()));
}

// m_indices with 128-aligned expert segments, each padded with -1 rows (some padding leading).
HostVec<int32_t> contiguous_indices(mmt::Rng& rng, const std::vector<int64_t>& counts, bool leading_padding) {
  HostVec<int32_t> idx;
  for (std::size_t e = 0; e < counts.size(); ++e) {
    if (counts[e] == 0) continue;
    const int64_t padded = (counts[e] + 127) / 128 * 128;
    const int64_t lead = leading_padding ? rng.range(0, padded - counts[e]) : 0;
    for (int64_t r = 0; r < padded; ++r) {
      idx.push_back(r >= lead && r < lead + counts[e] ? static_cast<int32_t>(e) : -1);
    }
  }
  return idx;
}

void run_contiguous(Contexts& c, mmt::Rng& rng, const std::vector<int64_t>& counts, int64_t n, int64_t k,
                    bool leading_padding, const char* what) {
  const int64_t e = static_cast<int64_t>(counts.size());
  const HostVec<int32_t> idx = contiguous_indices(rng, counts, leading_padding);
  const int64_t m = static_cast<int64_t>(idx.size());
  SCOPED_TRACE(testing::Message() << "contiguous " << what << ": E=" << e << " M=" << m << " N=" << n << " K=" << k);
  std::printf("  contiguous %s E=%lld M=%lld N=%lld K=%lld\n", what, static_cast<long long>(e), static_cast<long long>(m),
              static_cast<long long>(n), static_cast<long long>(k));
  const Operands o = make_operands(rng, m, n, k, e);
  Bound t = bind(c, o, {m, k}, true);
  auto idx_d = to_device(c.gpu, idx);
  const auto hi = mmt::make_tensor(idx.data(), MEGAMOE_DTYPE_INT32, {m});
  const auto di = idx_d->tensor(MEGAMOE_DTYPE_INT32, {m});
  HostVec<uint16_t> ref(static_cast<std::size_t>(m * n));
  const auto hd = mmt::make_tensor(ref.data(), MEGAMOE_DTYPE_BF16, {m, n});
  MMT_OK(megamoe_gemm_grouped_contiguous(c.cpu, &t.ha, &t.hsa, &t.hb, &t.hsb, &hi, &hd, nullptr));
  DeviceBuffer d(c.gpu, m * n * 2);
  const auto dd = d.tensor(MEGAMOE_DTYPE_BF16, {m, n});
  const auto mag = magnitudes(o, n, [&](int64_t r) { return int64_t{idx[static_cast<std::size_t>(r)]}; });
  for_every_tile(
      d, ref, mag, m, n,
      [&] { return megamoe_gemm_grouped_contiguous(c.gpu, &t.da, &t.dsa, &t.db, &t.dsb, &di, &dd, nullptr); },
      [](int64_t) { return true; });
}

TEST_F(GpuGemm, Contiguous) {
  MMT_SEED_TRACE(seed_);
  mmt::Rng rng(seed_);
  run_contiguous(c(), rng, {200, 0, 1, 128, 129, 0, 77}, 256, 512, false, "mixed");
  run_contiguous(c(), rng, {130, 5, 0, 250}, 384, 1024, true, "leading padding");
  run_contiguous(c(), rng, {0, 0, 700, 0}, 128, 640, false, "all rows on one expert");
  run_contiguous(c(), rng, {127}, 256, 7168, false, "M=128 one expert");
  std::vector<int64_t> many(1024, 0);
  many[0] = 3, many[511] = 129, many[1023] = 64;
  run_contiguous(c(), rng, many, 128, 128, true, "1024 experts");
}

void run_offsets(Contexts& c, mmt::Rng& rng, int64_t m, const std::vector<int64_t>& offsets, int64_t n, int64_t k,
                 megamoe_dtype_t dtype, const char* what) {
  const int64_t e = static_cast<int64_t>(offsets.size()) - 1;
  SCOPED_TRACE(testing::Message() << "offsets " << what << ": E=" << e << " M=" << m << " N=" << n << " K=" << k
                                  << " dtype=" << dtype);
  std::printf("  offsets %s E=%lld M=%lld N=%lld K=%lld\n", what, static_cast<long long>(e), static_cast<long long>(m),
              static_cast<long long>(n), static_cast<long long>(k));
  const Operands o = make_operands(rng, m, n, k, e);
  Bound t = bind(c, o, {m, k}, true);
  HostVec<int32_t> off32(offsets.begin(), offsets.end());
  HostVec<int64_t> off64(offsets.begin(), offsets.end());
  std::unique_ptr<DeviceBuffer> off_d =
      dtype == MEGAMOE_DTYPE_INT32 ? to_device(c.gpu, off32) : to_device(c.gpu, off64);
  const void* host_off = dtype == MEGAMOE_DTYPE_INT32 ? static_cast<const void*>(off32.data()) : off64.data();
  const auto ho = mmt::make_tensor(host_off, dtype, {e + 1});
  const auto dof = off_d->tensor(dtype, {e + 1});
  HostVec<uint16_t> ref(static_cast<std::size_t>(m * n));
  const auto hd = mmt::make_tensor(ref.data(), MEGAMOE_DTYPE_BF16, {m, n});
  MMT_OK(megamoe_gemm_grouped_offsets(c.cpu, &t.ha, &t.hsa, &t.hb, &t.hsb, &ho, &hd, nullptr));
  DeviceBuffer d(c.gpu, m * n * 2);
  const auto dd = d.tensor(MEGAMOE_DTYPE_BF16, {m, n});
  const auto mag = magnitudes(o, n, [&](int64_t r) {
    for (int64_t g = 0; g < e; ++g) {
      if (r >= offsets[static_cast<std::size_t>(g)] && r < offsets[static_cast<std::size_t>(g + 1)]) return g;
    }
    return int64_t{-1};
  });
  for_every_tile(
      d, ref, mag, m, n, [&] { return megamoe_gemm_grouped_offsets(c.gpu, &t.da, &t.dsa, &t.db, &t.dsb, &dof, &dd, nullptr); },
      [](int64_t) { return true; });
}

TEST_F(GpuGemm, Offsets) {
  MMT_SEED_TRACE(seed_);
  mmt::Rng rng(seed_);
  run_offsets(c(), rng, 300, {0, 100, 100, 229, 300}, 256, 512, MEGAMOE_DTYPE_INT32, "unaligned");
  run_offsets(c(), rng, 400, {17, 17, 145, 146, 390}, 128, 384, MEGAMOE_DTYPE_INT64, "gaps at both ends");
  run_offsets(c(), rng, 129, {0, 0, 129, 129}, 384, 1024, MEGAMOE_DTYPE_INT32, "one expert");
  std::vector<int64_t> many(1025, 0);
  for (int64_t i = 0; i <= 1024; ++i) many[static_cast<std::size_t>(i)] = std::min<int64_t>(200, (i * 7) / 5);
  run_offsets(c(), rng, 210, many, 128, 128, MEGAMOE_DTYPE_INT64, "1024 experts");
}

void run_masked(Contexts& c, mmt::Rng& rng, int64_t e, int64_t max_m, const std::vector<int32_t>& counts, int64_t n,
                int64_t k, int64_t expected_m, const char* what) {
  SCOPED_TRACE(testing::Message() << "masked " << what << ": E=" << e << " max_m=" << max_m << " N=" << n << " K=" << k);
  std::printf("  masked %s E=%lld max_m=%lld N=%lld K=%lld\n", what, static_cast<long long>(e),
              static_cast<long long>(max_m), static_cast<long long>(n), static_cast<long long>(k));
  const Operands o = make_operands(rng, e * max_m, n, k, e);
  Bound t = bind(c, o, {e, max_m, k}, true);
  HostVec<int32_t> mm(counts.begin(), counts.end());
  auto mm_d = to_device(c.gpu, mm);
  const auto hm = mmt::make_tensor(mm.data(), MEGAMOE_DTYPE_INT32, {e});
  const auto dm = mm_d->tensor(MEGAMOE_DTYPE_INT32, {e});
  HostVec<uint16_t> ref(static_cast<std::size_t>(e * max_m * n));
  const auto hd = mmt::make_tensor(ref.data(), MEGAMOE_DTYPE_BF16, {e, max_m, n});
  MMT_OK(megamoe_gemm_grouped_masked(c.cpu, &t.ha, &t.hsa, &t.hb, &t.hsb, &hm, expected_m, &hd, nullptr));
  DeviceBuffer d(c.gpu, e * max_m * n * 2);
  const auto dd = d.tensor(MEGAMOE_DTYPE_BF16, {e, max_m, n});
  const auto mag = magnitudes(o, n, [&](int64_t r) { return r / max_m; });
  for_every_tile(
      d, ref, mag, e * max_m, n,
      [&] { return megamoe_gemm_grouped_masked(c.gpu, &t.da, &t.dsa, &t.db, &t.dsb, &dm, expected_m, &dd, nullptr); },
      [&](int64_t r) { return r % max_m < mm[static_cast<std::size_t>(r / max_m)]; });
}

TEST_F(GpuGemm, Masked) {
  MMT_SEED_TRACE(seed_);
  mmt::Rng rng(seed_);
  run_masked(c(), rng, 4, 256, {0, 256, 129, 1}, 256, 512, 100, "mixed");
  run_masked(c(), rng, 3, 96, {20, 0, 95}, 384, 1024, 20, "decode-like");
  run_masked(c(), rng, 2, 128, {128, 127}, 128, 7168, 0, "long K");
  // Experts of 192 rows (the 192-row tile's case: forced in the tile sweep), with 1- and 64-row tails.
  run_masked(c(), rng, 4, 448, {192, 193, 448, 0}, 256, 1024, 192, "192-row experts");
  std::vector<int32_t> many(1024);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = static_cast<int32_t>(rng.range(0, 8));
  run_masked(c(), rng, 1024, 8, many, 128, 128, 4, "1024 experts");
}

}  // namespace
