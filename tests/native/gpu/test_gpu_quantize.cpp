// GPU parity of the memory-bound operations (docs/NUMERICS.md sections 1-2, operation 7): the
// CUDA backend must be bitwise identical to the CPU backend on fresh random inputs, outputs
// poisoned before each launch.
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "gpu/gpu_support.h"

namespace {

using mmt::HostVec;
using mmt_gpu::Contexts;
using mmt_gpu::DeviceBuffer;
using mmt_gpu::to_device;

// Rows of different magnitudes, a zero row, a row beyond the FP8 range, NaNs sprinkled in.
HostVec<float> activation_values(mmt::Rng& rng, int64_t m, int64_t k, bool with_nan) {
  HostVec<float> x(static_cast<std::size_t>(m * k));
  for (int64_t r = 0; r < m; ++r) {
    const double scale = r % 5 == 3 ? 0.0 : std::ldexp(1.0, static_cast<int>(rng.range(-12, 12)));
    for (int64_t c = 0; c < k; ++c) x[static_cast<std::size_t>(r * k + c)] = static_cast<float>(rng.normal() * scale);
  }
  if (with_nan && m * k > 0) {
    for (int i = 0; i < 4; ++i) x[static_cast<std::size_t>(rng.range(0, m * k - 1))] = std::numeric_limits<float>::quiet_NaN();
    x[static_cast<std::size_t>(rng.range(0, m * k - 1))] = 1.0e6f;
  }
  return x;
}

// Runs quantize_activations on both backends (with `checked`, megamoe_quantize_activations_checked on
// values that hold non-finite rows, whose counts must agree too); x given as float values, sent as
// `dtype`.
void check_quantize_activations(Contexts& c, const HostVec<float>& values, int64_t m, int64_t k,
                                megamoe_dtype_t dtype, bool ue8m0, bool checked = false) {
  SCOPED_TRACE(testing::Message() << "M=" << m << " K=" << k << " dtype=" << dtype << " ue8m0=" << ue8m0
                                  << " checked=" << checked);
  const int64_t groups = (k + 127) / 128;
  const HostVec<uint16_t> bf16 = mmt::to_bf16(values);
  const void* host_x = dtype == MEGAMOE_DTYPE_BF16 ? static_cast<const void*>(bf16.data()) : values.data();
  const int64_t x_bytes = m * k * mmt::dtype_bytes(dtype);
  const uint32_t flags = ue8m0 ? MEGAMOE_QUANT_UE8M0_SCALES : MEGAMOE_QUANT_DEFAULT;

  // CPU reference through the CPU backend.
  HostVec<uint8_t> q_ref(static_cast<std::size_t>(m * k));
  HostVec<float> s_ref(static_cast<std::size_t>(m * groups));
  HostVec<int32_t> count_ref(1, 5);
  {
    const auto x_t = mmt::make_tensor(host_x, dtype, {m, k});
    const auto q_t = mmt::make_tensor(q_ref.data(), MEGAMOE_DTYPE_FP8_E4M3, {m, k});
    const auto s_t = mmt::make_tensor(s_ref.data(), MEGAMOE_DTYPE_FP32, {m, groups});
    const auto c_t = mmt::make_tensor(count_ref.data(), MEGAMOE_DTYPE_INT32, {1});
    MMT_OK(megamoe_quantize_activations_checked(c.cpu, &x_t, &q_t, &s_t, flags, checked ? &c_t : nullptr, nullptr));
  }
  DeviceBuffer x(c.gpu, x_bytes), q(c.gpu, m * k), s(c.gpu, m * groups * 4), count(c.gpu, 4);
  x.upload(host_x, x_bytes);
  q.poison();
  s.poison();
  count.upload(HostVec<int32_t>(1, 5));
  const auto x_t = x.tensor(dtype, {m, k});
  const auto q_t = q.tensor(MEGAMOE_DTYPE_FP8_E4M3, {m, k});
  const auto s_t = s.tensor(MEGAMOE_DTYPE_FP32, {m, groups});
  const auto c_t = count.tensor(MEGAMOE_DTYPE_INT32, {1});
  if (checked) {
    MMT_OK(megamoe_quantize_activations_checked(c.gpu, &x_t, &q_t, &s_t, flags, &c_t, nullptr));
  } else {
    MMT_OK(megamoe_quantize_activations(c.gpu, &x_t, &q_t, &s_t, flags, nullptr));
  }
  MMT_OK(megamoe_context_synchronize(c.gpu, nullptr));
  const auto q_gpu = q.download<uint8_t>(m * k);
  const auto s_gpu = s.download<float>(m * groups);
  EXPECT_TRUE(mmt::bytes_equal(q_gpu.data(), q_ref.data(), m * k));
  EXPECT_TRUE(mmt::float_bits_equal(s_gpu.data(), s_ref.data(), m * groups));
  EXPECT_EQ(count.download<int32_t>(1)[0], count_ref[0]);
  if (checked) {
    EXPECT_GT(count_ref[0], 5) << "the rows to count";
    return;  // infinite scales (from infinite input) dequantize to NaNs whose bits the contract leaves open
  }

  // Dequantize the result back on both backends, BF16 and FP32.
  for (megamoe_dtype_t out_dtype : {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}) {
    const int64_t out_bytes = m * k * mmt::dtype_bytes(out_dtype);
    HostVec<uint8_t> ref(static_cast<std::size_t>(out_bytes));
    const auto qc = mmt::make_tensor(q_ref.data(), MEGAMOE_DTYPE_FP8_E4M3, {m, k});
    const auto sc = mmt::make_tensor(s_ref.data(), MEGAMOE_DTYPE_FP32, {m, groups});
    const auto oc = mmt::make_tensor(ref.data(), out_dtype, {m, k});
    MMT_OK(megamoe_dequantize_activations(c.cpu, &qc, &sc, &oc, nullptr));
    DeviceBuffer o(c.gpu, out_bytes);
    o.poison();
    const auto ot = o.tensor(out_dtype, {m, k});
    MMT_OK(megamoe_dequantize_activations(c.gpu, &q_t, &s_t, &ot, nullptr));
    const auto got = o.download<uint8_t>(out_bytes);
    // NaN codes (from NaN inputs) dequantize to NaN; compare those as NaN, the rest bitwise.
    int64_t mismatches = 0;
    for (int64_t i = 0; i < m * k; ++i) {
      const int64_t w = mmt::dtype_bytes(out_dtype);
      const bool nan_code = (q_ref[static_cast<std::size_t>(i)] & 0x7F) == 0x7F;
      if (nan_code) continue;
      if (std::memcmp(got.data() + i * w, ref.data() + i * w, static_cast<std::size_t>(w)) != 0) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0) << "dequantize_activations to dtype " << out_dtype;
  }
}

TEST(GpuQuantize, ActivationsBitwise) {
  MMT_REQUIRE_CUDA();
  Contexts c;
  ASSERT_NE(c.gpu, nullptr) << megamoe_last_error_message();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 128}, {127, 7168}, {129, 512}, {64, 144},
                                                           {33, 200}, {5, 7}, {300, 2048}};
  for (auto [m, k] : shapes) {
    for (megamoe_dtype_t dtype : {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}) {
      const HostVec<float> values = activation_values(rng, m, k, true);
      for (bool ue8m0 : {false, true}) check_quantize_activations(c, values, m, k, dtype, ue8m0);
    }
  }
}

TEST(GpuQuantize, ZeroRowsWriteNothing) {
  MMT_REQUIRE_CUDA();
  Contexts c;
  DeviceBuffer x(c.gpu, 16), q(c.gpu, 16), s(c.gpu, 16);
  q.poison();
  const auto x_t = x.tensor(MEGAMOE_DTYPE_BF16, {0, 256});
  const auto q_t = q.tensor(MEGAMOE_DTYPE_FP8_E4M3, {0, 256});
  const auto s_t = s.tensor(MEGAMOE_DTYPE_FP32, {0, 2});
  MMT_OK(megamoe_quantize_activations(c.gpu, &x_t, &q_t, &s_t, 0, nullptr));
  const auto bytes = q.download<uint8_t>(16);
  EXPECT_TRUE(mmt::all_bytes_are(bytes.data(), bytes.size()));
}

// The checked quantizer: the same bits as the CPU backend, and the same count of rows holding a NaN or
// an infinity. Rows of K = 7168 span several CTAs of the unchecked kernel, so a row counted once per
// CTA would show here; 70,000 rows exceed the checked kernel's 65,536 CTAs (grid-stride).
TEST(GpuQuantize, CheckedCountsNonFiniteRowsOnceEach) {
  MMT_REQUIRE_CUDA();
  Contexts c;
  ASSERT_NE(c.gpu, nullptr) << megamoe_last_error_message();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()};
  for (auto [m, k] : std::vector<std::pair<int64_t, int64_t>>{{1, 128}, {37, 7168}, {70000, 144}, {33, 200}}) {
    HostVec<float> values = activation_values(rng, m, k, false);
    for (int64_t r = 0; r < m; ++r) {
      // Row 0 and about 30% of the others get one to three non-finite values anywhere, often in the
      // last column (row 0 always, so that every shape has a row to count).
      if (r != 0 && !rng.chance(0.3)) continue;
      for (int64_t n = rng.range(1, 3); n > 0; --n) {
        const int64_t col = rng.chance(0.3) ? k - 1 : rng.range(0, k - 1);
        values[static_cast<std::size_t>(r * k + col)] = specials[rng.range(0, 2)];
      }
    }
    for (megamoe_dtype_t dtype : {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}) {
      check_quantize_activations(c, values, m, k, dtype, false, true);
    }
  }
}

void check_weights(Contexts& c, mmt::Rng& rng, int64_t e, int64_t n, int64_t k, bool grouped, megamoe_dtype_t dtype,
                   bool ue8m0) {
  SCOPED_TRACE(testing::Message() << "E=" << e << " N=" << n << " K=" << k << " dtype=" << dtype << " ue8m0=" << ue8m0);
  const int64_t nb = (n + 127) / 128, kb = (k + 127) / 128;
  const std::vector<int64_t> shape = grouped ? std::vector<int64_t>{e, n, k} : std::vector<int64_t>{n, k};
  const std::vector<int64_t> sshape = grouped ? std::vector<int64_t>{e, nb, kb} : std::vector<int64_t>{nb, kb};
  const int64_t count = e * n * k, scount = e * nb * kb;
  HostVec<float> values = activation_values(rng, e * n, k, false);
  const HostVec<uint16_t> bf16 = mmt::to_bf16(values);
  const void* host_w = dtype == MEGAMOE_DTYPE_BF16 ? static_cast<const void*>(bf16.data()) : values.data();
  const int64_t w_bytes = count * mmt::dtype_bytes(dtype);
  const uint32_t flags = ue8m0 ? MEGAMOE_QUANT_UE8M0_SCALES : 0u;

  HostVec<uint8_t> q_ref(static_cast<std::size_t>(count));
  HostVec<float> s_ref(static_cast<std::size_t>(scount));
  const auto wc = mmt::make_tensor(host_w, dtype, shape);
  const auto qc = mmt::make_tensor(q_ref.data(), MEGAMOE_DTYPE_FP8_E4M3, shape);
  const auto sc = mmt::make_tensor(s_ref.data(), MEGAMOE_DTYPE_FP32, sshape);
  MMT_OK(megamoe_quantize_weights(c.cpu, &wc, &qc, &sc, flags, nullptr));

  DeviceBuffer w(c.gpu, w_bytes), q(c.gpu, count), s(c.gpu, scount * 4);
  w.upload(host_w, w_bytes);
  q.poison();
  s.poison();
  const auto wt = w.tensor(dtype, shape);
  const auto qt = q.tensor(MEGAMOE_DTYPE_FP8_E4M3, shape);
  const auto st = s.tensor(MEGAMOE_DTYPE_FP32, sshape);
  MMT_OK(megamoe_quantize_weights(c.gpu, &wt, &qt, &st, flags, nullptr));
  const auto q_gpu = q.download<uint8_t>(count);
  const auto s_gpu = s.download<float>(scount);
  EXPECT_TRUE(mmt::bytes_equal(q_gpu.data(), q_ref.data(), count));
  EXPECT_TRUE(mmt::float_bits_equal(s_gpu.data(), s_ref.data(), scount));

  for (megamoe_dtype_t out_dtype : {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}) {
    const int64_t out_bytes = count * mmt::dtype_bytes(out_dtype);
    HostVec<uint8_t> ref(static_cast<std::size_t>(out_bytes));
    const auto oc = mmt::make_tensor(ref.data(), out_dtype, shape);
    MMT_OK(megamoe_dequantize_weights(c.cpu, &qc, &sc, &oc, nullptr));
    DeviceBuffer o(c.gpu, out_bytes);
    o.poison();
    const auto ot = o.tensor(out_dtype, shape);
    MMT_OK(megamoe_dequantize_weights(c.gpu, &qt, &st, &ot, nullptr));
    const auto got = o.download<uint8_t>(out_bytes);
    EXPECT_TRUE(mmt::bytes_equal(got.data(), ref.data(), out_bytes)) << "dequantize_weights to dtype " << out_dtype;
  }
}

TEST(GpuQuantize, WeightsBitwise) {
  MMT_REQUIRE_CUDA();
  Contexts c;
  ASSERT_NE(c.gpu, nullptr) << megamoe_last_error_message();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  // Full blocks, partial blocks (N, K not multiples of 128), K not a multiple of the vector width.
  const std::vector<std::tuple<int64_t, int64_t, int64_t, bool>> shapes = {
      {3, 256, 384, true}, {1, 200, 136, true}, {2, 130, 100, true}, {1, 384, 256, false}, {1, 1, 5, false}};
  for (auto [e, n, k, grouped] : shapes) {
    for (megamoe_dtype_t dtype : {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}) {
      for (bool ue8m0 : {false, true}) check_weights(c, rng, e, n, k, grouped, dtype, ue8m0);
    }
  }
}

TEST(GpuTransform, InterleaveGateUpBitwise) {
  MMT_REQUIRE_CUDA();
  Contexts c;
  ASSERT_NE(c.gpu, nullptr) << megamoe_last_error_message();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  struct Case {
    int64_t e, i, h;
    megamoe_dtype_t dtype;
  };
  const std::vector<Case> cases = {{2, 128, 256, MEGAMOE_DTYPE_FP8_E4M3}, {3, 64, 72, MEGAMOE_DTYPE_BF16},
                                   {1, 8, 3, MEGAMOE_DTYPE_FP8_E4M3},     {2, 16, 5, MEGAMOE_DTYPE_FP32},
                                   {1, 256, 128, MEGAMOE_DTYPE_INT64}};
  for (const Case& cs : cases) {
    for (int32_t inverse : {0, 1}) {
      SCOPED_TRACE(testing::Message() << "E=" << cs.e << " I=" << cs.i << " H=" << cs.h << " dtype=" << cs.dtype
                                      << " inverse=" << inverse);
      const std::vector<int64_t> shape = {cs.e, 2 * cs.i, cs.h};
      const int64_t bytes = cs.e * 2 * cs.i * cs.h * mmt::dtype_bytes(cs.dtype);
      HostVec<uint8_t> w(static_cast<std::size_t>(bytes));
      for (auto& b : w) b = static_cast<uint8_t>(rng.bits32() & 0x7Eu);  // no FP8 NaN codes
      HostVec<uint8_t> ref(static_cast<std::size_t>(bytes));
      const auto wc = mmt::make_tensor(w.data(), cs.dtype, shape);
      const auto rc = mmt::make_tensor(ref.data(), cs.dtype, shape);
      MMT_OK(megamoe_interleave_gate_up(c.cpu, &wc, &rc, inverse, nullptr));
      auto wd = to_device(c.gpu, w);
      DeviceBuffer out(c.gpu, bytes);
      out.poison();
      const auto wt = wd->tensor(cs.dtype, shape);
      const auto ot = out.tensor(cs.dtype, shape);
      MMT_OK(megamoe_interleave_gate_up(c.gpu, &wt, &ot, inverse, nullptr));
      const auto got = out.download<uint8_t>(bytes);
      EXPECT_TRUE(mmt::bytes_equal(got.data(), ref.data(), bytes));
    }
  }
}

}  // namespace
