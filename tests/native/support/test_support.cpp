#include "support/test_support.h"

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace mmt {

// ------------------------------------------------------------------------------------------------
// Tensors
// ------------------------------------------------------------------------------------------------
int64_t dtype_bytes(megamoe_dtype_t dtype) {
  switch (dtype) {
    case MEGAMOE_DTYPE_FP8_E4M3: return 1;
    case MEGAMOE_DTYPE_BF16: return 2;
    case MEGAMOE_DTYPE_FP32: return 4;
    case MEGAMOE_DTYPE_INT32: return 4;
    case MEGAMOE_DTYPE_INT64: return 8;
  }
  return 0;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

megamoe_moe_config_t moe_config(int32_t experts, int32_t top_k, int64_t hidden, int64_t intermediate,
                                int64_t max_tokens) {
  megamoe_moe_config_t c;
  std::memset(&c, 0, sizeof c);
  c.struct_size = sizeof c;
  c.num_experts = experts;
  c.top_k = top_k;
  c.hidden = hidden;
  c.intermediate = intermediate;
  c.max_tokens = max_tokens;
  c.activation_alpha = 1.0f;
  c.routed_scaling_factor = 1.0f;
  return c;
}

megamoe_tensor_t make_tensor(const void* data, megamoe_dtype_t dtype, const std::vector<int64_t>& shape) {
  megamoe_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = const_cast<void*>(data);
  t.device_type = MEGAMOE_DEVICE_CPU;
  t.device_id = 0;
  t.dtype = dtype;
  t.rank = static_cast<int32_t>(shape.size());
  int64_t stride = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    if (i < MEGAMOE_MAX_RANK) {
      t.shape[i] = shape[static_cast<std::size_t>(i)];
      t.strides[i] = stride;
    }
    stride *= shape[static_cast<std::size_t>(i)];
  }
  return t;
}

// At the end of the process every MegaMoe object must be gone (ctest runs one test per process,
// so this is a per-test leak check; a whole-binary run checks all tests together).
namespace {
class LeakCheck : public ::testing::Environment {
 public:
  void TearDown() override {
    EXPECT_EQ(megamoe_live_object_count(), 0) << "MegaMoe objects still alive at the end of the tests (a leak)";
  }
};
[[maybe_unused]] ::testing::Environment* const g_leak_check = ::testing::AddGlobalTestEnvironment(new LeakCheck);
}  // namespace

ScopedContext::ScopedContext(megamoe_backend_t backend) {
  const megamoe_status_t st = megamoe_context_create(backend, 0, &ctx_);
  if (st != MEGAMOE_SUCCESS) {
    ADD_FAILURE() << "megamoe_context_create failed: " << megamoe_status_string(st) << ": " << last_error();
    ctx_ = nullptr;
  }
}

ScopedContext::~ScopedContext() {
  if (ctx_ != nullptr) {
    EXPECT_EQ(megamoe_context_destroy(ctx_), MEGAMOE_SUCCESS);
  }
}

// ------------------------------------------------------------------------------------------------
// Random inputs
// ------------------------------------------------------------------------------------------------
uint64_t fresh_seed() {
  if (const char* env = std::getenv("MEGAMOE_TEST_SEED")) {
    if (*env) return std::strtoull(env, nullptr, 0);
  }
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

std::string seed_message(uint64_t seed) {
  std::ostringstream out;
  out << "random seed " << seed << " (replay with MEGAMOE_TEST_SEED=" << seed << ")";
  return out.str();
}

HostVec<uint8_t> random_fp8(Rng& rng, int64_t n) {
  HostVec<uint8_t> v(static_cast<std::size_t>(n));
  for (auto& c : v) {
    uint8_t code;
    do {
      code = static_cast<uint8_t>(rng.bits32() & 0xFFu);
    } while ((code & 0x7Fu) == 0x7Fu);
    c = code;
  }
  return v;
}

float random_scale(Rng& rng, int lo_exp, int hi_exp) {
  const double e = static_cast<double>(rng.range(lo_exp, hi_exp - 1));
  return static_cast<float>(std::ldexp(rng.uniform(1.0, 2.0), static_cast<int>(e)));
}

HostVec<float> random_scales(Rng& rng, int64_t n, int lo_exp, int hi_exp) {
  HostVec<float> v(static_cast<std::size_t>(n));
  for (auto& s : v) s = random_scale(rng, lo_exp, hi_exp);
  return v;
}

HostVec<float> random_normal(Rng& rng, int64_t n, double stddev) {
  HostVec<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal(0.0, stddev));
  return v;
}

HostVec<uint16_t> to_bf16(const HostVec<float>& x) {
  HostVec<uint16_t> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = bf16_encode(x[i]);
  return out;
}

HostVec<float> from_bf16(const HostVec<uint16_t>& x) {
  HostVec<float> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = bf16_decode(x[i]);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Comparisons
// ------------------------------------------------------------------------------------------------
::testing::AssertionResult bf16_bits_equal(const uint16_t* got, const uint16_t* want, int64_t n) {
  int64_t mismatches = 0;
  std::ostringstream out;
  for (int64_t i = 0; i < n; ++i) {
    if (got[i] != want[i]) {
      if (mismatches < 8) {
        char line[160];
        std::snprintf(line, sizeof line, "\n  [%" PRId64 "] got 0x%04X (%.9g) want 0x%04X (%.9g)", i, got[i],
                      static_cast<double>(bf16_decode(got[i])), want[i], static_cast<double>(bf16_decode(want[i])));
        out << line;
      }
      ++mismatches;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << mismatches << " of " << n << " BF16 values differ:" << out.str();
}

::testing::AssertionResult bytes_equal(const void* got, const void* want, int64_t n) {
  const auto* g = static_cast<const uint8_t*>(got);
  const auto* w = static_cast<const uint8_t*>(want);
  int64_t mismatches = 0;
  std::ostringstream out;
  for (int64_t i = 0; i < n; ++i) {
    if (g[i] != w[i]) {
      if (mismatches < 8) {
        char line[96];
        std::snprintf(line, sizeof line, "\n  byte [%" PRId64 "] got 0x%02X want 0x%02X", i, g[i], w[i]);
        out << line;
      }
      ++mismatches;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << mismatches << " of " << n << " bytes differ:" << out.str();
}

::testing::AssertionResult float_bits_equal(const float* got, const float* want, int64_t n) {
  int64_t mismatches = 0;
  std::ostringstream out;
  for (int64_t i = 0; i < n; ++i) {
    if (float_to_bits(got[i]) != float_to_bits(want[i])) {
      if (mismatches < 8) {
        char line[160];
        std::snprintf(line, sizeof line, "\n  [%" PRId64 "] got 0x%08X (%.9g) want 0x%08X (%.9g)", i,
                      float_to_bits(got[i]), static_cast<double>(got[i]), float_to_bits(want[i]),
                      static_cast<double>(want[i]));
        out << line;
      }
      ++mismatches;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << mismatches << " of " << n << " float values differ:" << out.str();
}

double rel_error(const std::vector<double>& want, const std::vector<double>& got) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double d = got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(num / den);
}

double cos_diff(const std::vector<double>& x, const std::vector<double>& y) {
  double xy = 0.0, xx = 0.0, yy = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    xy += x[i] * y[i];
    xx += x[i] * x[i];
    yy += y[i] * y[i];
  }
  if (xx + yy == 0.0) return 0.0;
  return 1.0 - 2.0 * xy / (xx + yy);
}

// ------------------------------------------------------------------------------------------------
// References
// ------------------------------------------------------------------------------------------------
namespace {

// float32 scale of one group from its amax (section 2).
float group_scale(float amax, bool ue8m0) {
  float sf = std::max(amax, 1e-4f) / 448.0f;
  if (ue8m0 && std::isfinite(sf)) sf = pow2_ceil(sf);
  return sf;
}

const std::array<int32_t, 256>& units_table() {
  static const std::array<int32_t, 256> table = [] {
    std::array<int32_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
      const auto code = static_cast<uint8_t>(c);
      t[static_cast<std::size_t>(c)] = ((code & 0x7F) == 0x7F) ? 0 : fp8_units(code);
    }
    return t;
  }();
  return table;
}

const std::array<double, 256>& value_table() {
  static const std::array<double, 256> table = [] {
    std::array<double, 256> t{};
    for (int c = 0; c < 256; ++c) t[static_cast<std::size_t>(c)] = static_cast<double>(fp8_decode(static_cast<uint8_t>(c)));
    return t;
  }();
  return table;
}

}  // namespace

void ref_quantize_activations(const float* x, int64_t M, int64_t K, bool ue8m0, uint8_t* q, float* s) {
  const int64_t G = (K + 127) / 128;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t g = 0; g < G; ++g) {
      const int64_t k0 = 128 * g, k1 = std::min(k0 + 128, K);
      float amax = 0.0f;
      for (int64_t k = k0; k < k1; ++k) amax = std::fmax(amax, std::fabs(x[m * K + k]));
      const float sf = group_scale(amax, ue8m0);
      const float inv = 1.0f / sf;
      for (int64_t k = k0; k < k1; ++k) q[m * K + k] = fp8_encode(x[m * K + k] * inv);
      s[m * G + g] = sf;
    }
  }
}

void ref_quantize_weights(const float* w, int64_t E, int64_t N, int64_t K, bool ue8m0, uint8_t* q, float* s) {
  const int64_t BN = (N + 127) / 128, BK = (K + 127) / 128;
  for (int64_t e = 0; e < E; ++e) {
    const float* we = w + e * N * K;
    uint8_t* qe = q + e * N * K;
    for (int64_t bn = 0; bn < BN; ++bn) {
      for (int64_t bk = 0; bk < BK; ++bk) {
        const int64_t n0 = 128 * bn, n1 = std::min(n0 + 128, N);
        const int64_t k0 = 128 * bk, k1 = std::min(k0 + 128, K);
        float amax = 0.0f;
        for (int64_t n = n0; n < n1; ++n)
          for (int64_t k = k0; k < k1; ++k) amax = std::fmax(amax, std::fabs(we[n * K + k]));
        const float sf = group_scale(amax, ue8m0);
        const float inv = 1.0f / sf;
        for (int64_t n = n0; n < n1; ++n)
          for (int64_t k = k0; k < k1; ++k) qe[n * K + k] = fp8_encode(we[n * K + k] * inv);
        s[(e * BN + bn) * BK + bk] = sf;
      }
    }
  }
}

float ref_gemm_acc(const uint8_t* a_row, const float* sa_row, const uint8_t* b_row, const float* sb_row, int64_t K) {
  const auto& u = units_table();
  float acc = 0.0f;
  for (int64_t blk = 0; blk < K / 128; ++blk) {
    // Exact: each product is an integer number of 2^-18, |sum| < 2^43.
    int64_t sum = 0;
    for (int64_t k = 128 * blk; k < 128 * blk + 128; ++k)
      sum += static_cast<int64_t>(u[a_row[k]]) * static_cast<int64_t>(u[b_row[k]]);
    // One rounding (int64 -> float32 is round-to-nearest-even), then an exact power-of-two scaling.
    const float partial = std::ldexp(static_cast<float>(sum), -18);
    const float scale = sa_row[blk] * sb_row[blk];
    acc = std::fma(scale, partial, acc);
  }
  return acc;
}

double ref_gemm_f64(const uint8_t* a_row, const float* sa_row, const uint8_t* b_row, const float* sb_row, int64_t K) {
  const auto& v = value_table();
  double acc = 0.0;
  for (int64_t blk = 0; blk < K / 128; ++blk) {
    double sum = 0.0;
    for (int64_t k = 128 * blk; k < 128 * blk + 128; ++k) sum += v[a_row[k]] * v[b_row[k]];
    acc += static_cast<double>(sa_row[blk]) * static_cast<double>(sb_row[blk]) * sum;
  }
  return acc;
}

void ref_gemm_dense(const uint8_t* a, const float* sa, const uint8_t* b, const float* sb, int64_t M, int64_t N,
                    int64_t K, uint16_t* d) {
  const int64_t KB = K / 128;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      d[m * N + n] = bf16_encode(ref_gemm_acc(a + m * K, sa + m * KB, b + n * K, sb + (n / 128) * KB, K));
}

void ref_interleave_gate_up(const void* in, void* out, int64_t E, int64_t I, int64_t H, int64_t elem_size,
                            bool inverse) {
  const auto* src = static_cast<const uint8_t*>(in);
  auto* dst = static_cast<uint8_t*>(out);
  const int64_t row_bytes = H * elem_size;
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t r = 0; r < 2 * I; ++r) {
      // Interleaved row r holds canonical row c.
      const int64_t block = r / 16, within = r % 16;
      const int64_t c = within < 8 ? 8 * block + within : I + 8 * block + (within - 8);
      const int64_t from = inverse ? r : c;
      const int64_t to = inverse ? c : r;
      std::memcpy(dst + (e * 2 * I + to) * row_bytes, src + (e * 2 * I + from) * row_bytes,
                  static_cast<std::size_t>(row_bytes));
    }
  }
}

void ref_moe_forward(const MoeRefConfig& cfg, const MoeRefWeights& w, const uint8_t* qx, const float* sx,
                     const int64_t* topk_idx, const float* topk_weights, int64_t T, uint16_t* y) {
  const int64_t H = cfg.H, I = cfg.I, HB = H / 128, IB = I / 128;
  std::vector<float> h(static_cast<std::size_t>(2 * I)), act(static_cast<std::size_t>(I)), z(static_cast<std::size_t>(H)),
      yacc(static_cast<std::size_t>(H));
  std::vector<uint8_t> qa(static_cast<std::size_t>(I));
  std::vector<float> sa(static_cast<std::size_t>(IB));
  for (int64_t t = 0; t < T; ++t) {
    std::fill(yacc.begin(), yacc.end(), 0.0f);
    for (int64_t j = 0; j < cfg.k; ++j) {
      const int64_t e = topk_idx[t * cfg.k + j];
      if (e == -1) continue;
      // 2. up-projection accumulators (float32, not rounded to BF16)
      const uint8_t* w13 = w.w13.data() + e * 2 * I * H;
      const float* s13 = w.s13.data() + e * (2 * I / 128) * HB;
      for (int64_t n = 0; n < 2 * I; ++n)
        h[static_cast<std::size_t>(n)] = ref_gemm_acc(qx + t * H, sx + t * HB, w13 + n * H, s13 + (n / 128) * HB, H);
      // 3. activation, in float32
      const float weight = topk_weights[t * cfg.k + j] * cfg.rsf;
      for (int64_t i = 0; i < I; ++i) {
        float g = h[static_cast<std::size_t>(i)];
        float u = h[static_cast<std::size_t>(I + i)];
        if (cfg.clamp > 0.0f) {
          g = std::fmin(g, cfg.clamp);
          u = std::fmin(std::fmax(u, -cfg.clamp), cfg.clamp);
        }
        const float s = 1.0f / (1.0f + std::exp(-(cfg.alpha * g)));
        float a = (g * s) * (u + cfg.beta);
        a = a * weight;
        act[static_cast<std::size_t>(i)] = a;
      }
      // 4. re-quantize along I
      ref_quantize_activations(act.data(), 1, I, false, qa.data(), sa.data());
      // 5. down-projection, rounded to BF16, and 6. combine in slot order
      const uint8_t* w2 = w.w2.data() + e * H * I;
      const float* s2 = w.s2.data() + e * HB * IB;
      for (int64_t n = 0; n < H; ++n) {
        z[static_cast<std::size_t>(n)] =
            bf16_decode(bf16_encode(ref_gemm_acc(qa.data(), sa.data(), w2 + n * I, s2 + (n / 128) * IB, I)));
        yacc[static_cast<std::size_t>(n)] = yacc[static_cast<std::size_t>(n)] + z[static_cast<std::size_t>(n)];
      }
    }
    for (int64_t n = 0; n < H; ++n) y[t * H + n] = bf16_encode(yacc[static_cast<std::size_t>(n)]);
  }
}

void ref_moe_forward_f64(const MoeRefConfig& cfg, const MoeRefWeights& w, const float* x, const int64_t* topk_idx,
                         const float* topk_weights, int64_t T, double* y) {
  const auto& v = value_table();
  const int64_t H = cfg.H, I = cfg.I, HB = H / 128, IB = I / 128;
  std::vector<double> h(static_cast<std::size_t>(2 * I)), act(static_cast<std::size_t>(I));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t n = 0; n < H; ++n) y[t * H + n] = 0.0;
    for (int64_t j = 0; j < cfg.k; ++j) {
      const int64_t e = topk_idx[t * cfg.k + j];
      if (e == -1) continue;
      const uint8_t* w13 = w.w13.data() + e * 2 * I * H;
      const float* s13 = w.s13.data() + e * (2 * I / 128) * HB;
      for (int64_t n = 0; n < 2 * I; ++n) {
        double acc = 0.0;
        for (int64_t k = 0; k < H; ++k)
          acc += v[w13[n * H + k]] * static_cast<double>(s13[(n / 128) * HB + k / 128]) * static_cast<double>(x[t * H + k]);
        h[static_cast<std::size_t>(n)] = acc;
      }
      const double weight = static_cast<double>(topk_weights[t * cfg.k + j]) * static_cast<double>(cfg.rsf);
      const double c = static_cast<double>(cfg.clamp);
      for (int64_t i = 0; i < I; ++i) {
        double g = h[static_cast<std::size_t>(i)];
        double u = h[static_cast<std::size_t>(I + i)];
        if (c > 0.0) {
          g = std::min(g, c);
          u = std::min(std::max(u, -c), c);
        }
        const double s = 1.0 / (1.0 + std::exp(-static_cast<double>(cfg.alpha) * g));
        act[static_cast<std::size_t>(i)] = g * s * (u + static_cast<double>(cfg.beta)) * weight;
      }
      const uint8_t* w2 = w.w2.data() + e * H * I;
      const float* s2 = w.s2.data() + e * HB * IB;
      for (int64_t n = 0; n < H; ++n) {
        double acc = 0.0;
        for (int64_t i = 0; i < I; ++i)
          acc += v[w2[n * I + i]] * static_cast<double>(s2[(n / 128) * IB + i / 128]) * act[static_cast<std::size_t>(i)];
        y[t * H + n] += acc;
      }
    }
  }
}

}  // namespace mmt
