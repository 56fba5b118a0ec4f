#include "support/moe_problem.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>

namespace mmt {

MoeProblem make_moe_problem(Rng& rng, int64_t E, int64_t k, int64_t H, int64_t I, int64_t max_tokens, double gain) {
  MoeProblem p;
  p.cfg.E = E;
  p.cfg.k = k;
  p.cfg.H = H;
  p.cfg.I = I;
  p.max_tokens = max_tokens;
  auto w13 = random_normal(rng, E * 2 * I * H, gain / std::sqrt(static_cast<double>(H)));
  auto w2 = random_normal(rng, E * H * I, 1.0 / std::sqrt(static_cast<double>(I)));
  // Experts and row blocks of different magnitudes, so block scales differ.
  for (int64_t e = 0; e < E; ++e) {
    const auto f = static_cast<float>(std::ldexp(1.0, static_cast<int>(rng.range(-1, 1))) * rng.uniform(0.7, 1.3));
    for (int64_t i = 0; i < 2 * I * H; ++i) w13[static_cast<std::size_t>(e * 2 * I * H + i)] *= f;
  }
  p.w13_bf16 = to_bf16(w13);
  p.w2_bf16 = to_bf16(w2);
  p.w13_f = from_bf16(p.w13_bf16);
  p.w2_f = from_bf16(p.w2_bf16);
  p.q.w13.resize(static_cast<std::size_t>(E * 2 * I * H));
  p.q.s13.resize(static_cast<std::size_t>(E * (2 * I / 128) * (H / 128)));
  p.q.w2.resize(static_cast<std::size_t>(E * H * I));
  p.q.s2.resize(static_cast<std::size_t>(E * (H / 128) * (I / 128)));
  ref_quantize_weights(p.w13_f.data(), E, 2 * I, H, false, p.q.w13.data(), p.q.s13.data());
  ref_quantize_weights(p.w2_f.data(), E, H, I, false, p.q.w2.data(), p.q.s2.data());
  return p;
}

megamoe_moe_config_t moe_config(const MoeProblem& p, uint32_t flags) {
  auto c = layer_config<megamoe_moe_config_t>(p, flags);
  c.max_tokens = p.max_tokens;
  return c;
}

const char* weight_mode_name(WeightMode m) {
  return m == WeightMode::Fp8 ? "FP8" : m == WeightMode::Bf16 ? "BF16" : "FP32";
}

MoeWeightArgs::MoeWeightArgs(const MoeProblem& p, WeightMode mode, bool interleaved, int64_t first, int64_t count) {
  const int64_t H = p.cfg.H, I = p.cfg.I;
  const megamoe_dtype_t dt = mode == WeightMode::Fp8    ? MEGAMOE_DTYPE_FP8_E4M3
                             : mode == WeightMode::Bf16 ? MEGAMOE_DTYPE_BF16
                                                        : MEGAMOE_DTYPE_FP32;
  const int64_t elem = dtype_bytes(dt);
  const void* src13 = mode == WeightMode::Fp8    ? static_cast<const void*>(p.q.w13.data())
                      : mode == WeightMode::Bf16 ? static_cast<const void*>(p.w13_bf16.data())
                                                 : static_cast<const void*>(p.w13_f.data());
  const void* src2 = mode == WeightMode::Fp8    ? static_cast<const void*>(p.q.w2.data())
                     : mode == WeightMode::Bf16 ? static_cast<const void*>(p.w2_bf16.data())
                                                : static_cast<const void*>(p.w2_f.data());
  src13 = static_cast<const uint8_t*>(src13) + first * 2 * I * H * elem;
  src2 = static_cast<const uint8_t*>(src2) + first * H * I * elem;
  w13.resize(static_cast<std::size_t>(count * 2 * I * H * elem));
  w2.resize(static_cast<std::size_t>(count * H * I * elem));
  if (interleaved) {
    ref_interleave_gate_up(src13, w13.data(), count, I, H, elem, false);
  } else {
    std::memcpy(w13.data(), src13, w13.size());
  }
  std::memcpy(w2.data(), src2, w2.size());
  w13_t = make_tensor(w13.data(), dt, {count, 2 * I, H});
  w2_t = make_tensor(w2.data(), dt, {count, H, I});
  if (mode == WeightMode::Fp8) {
    scales = true;
    // Block scales are unchanged by the interleave.
    const int64_t b13 = (2 * I / 128) * (H / 128), b2 = (H / 128) * (I / 128);
    s13.assign(p.q.s13.begin() + first * b13, p.q.s13.begin() + (first + count) * b13);
    s2.assign(p.q.s2.begin() + first * b2, p.q.s2.begin() + (first + count) * b2);
    s13_t = make_tensor(s13.data(), MEGAMOE_DTYPE_FP32, {count, 2 * I / 128, H / 128});
    s2_t = make_tensor(s2.data(), MEGAMOE_DTYPE_FP32, {count, H / 128, I / 128});
  }
}

const char* routing_name(Routing r) {
  switch (r) {
    case Routing::Uniform: return "uniform";
    case Routing::Skewed: return "skewed";
    case Routing::OneExpert: return "one-expert";
    case Routing::OneExpertAllSlots: return "one-expert-all-slots";
    case Routing::Dropped: return "dropped-slots";
    case Routing::Duplicates: return "duplicates";
    case Routing::AllDropped: return "all-dropped";
  }
  return "?";
}

void PrintTo(Routing r, std::ostream* os) { *os << routing_name(r); }

MoeBatch make_moe_batch(Rng& rng, const MoeProblem& p, int64_t T, Routing routing, double log10_spread) {
  const int64_t E = p.cfg.E, k = p.cfg.k;
  MoeBatch b;
  b.T = T;
  b.k = k;
  auto x = random_normal(rng, T * p.cfg.H, 1.0);
  // A few tokens of very different magnitude.
  for (int64_t t = 0; t < T; ++t) {
    if (rng.chance(0.2)) {
      const auto f = static_cast<float>(std::pow(10.0, rng.uniform(-log10_spread, log10_spread)));
      for (int64_t h = 0; h < p.cfg.H; ++h) x[static_cast<std::size_t>(t * p.cfg.H + h)] *= f;
    }
  }
  b.x = to_bf16(x);
  b.xf = from_bf16(b.x);
  b.idx.assign(static_cast<std::size_t>(T * k), -1);
  b.w.resize(static_cast<std::size_t>(T * k));
  const int64_t star = rng.range(0, E - 1);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int64_t> perm(static_cast<std::size_t>(E));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng.engine());
    for (int64_t j = 0; j < k; ++j) {
      int64_t& e = b.idx[static_cast<std::size_t>(t * k + j)];
      const int64_t distinct = perm[static_cast<std::size_t>(j % E)];
      switch (routing) {
        case Routing::Uniform: e = distinct; break;
        case Routing::Skewed: e = rng.chance(0.7) ? (rng.chance(0.8) ? 0 : 1) : rng.range(0, E - 1); break;
        case Routing::OneExpert: e = j == 0 ? star : -1; break;
        case Routing::OneExpertAllSlots: e = star; break;
        case Routing::Dropped: e = rng.chance(0.3) ? -1 : distinct; break;
        case Routing::Duplicates: e = (j > 0 && rng.chance(0.5)) ? b.idx[static_cast<std::size_t>(t * k + j - 1)] : distinct; break;
        case Routing::AllDropped: e = -1; break;
      }
      b.w[static_cast<std::size_t>(t * k + j)] = static_cast<float>(rng.uniform(0.05, 1.0));
    }
    if (routing == Routing::Dropped && rng.chance(0.2)) {
      for (int64_t j = 0; j < k; ++j) b.idx[static_cast<std::size_t>(t * k + j)] = -1;  // fully dropped token
    }
  }
  return b;
}

void expect_within_f64_bound(const MoeProblem& p, const MoeBatch& b, const uint16_t* y, int64_t valid) {
  const int64_t T = valid < 0 ? b.T : valid, H = p.cfg.H;
  if (T == 0) return;
  std::vector<double> f64(static_cast<std::size_t>(T * H));
  ref_moe_forward_f64(p.cfg, p.q, b.xf.data(), b.idx.data(), b.w.data(), T, f64.data());
  std::vector<double> got(static_cast<std::size_t>(T * H));
  double norm = 0.0;
  for (int64_t i = 0; i < T * H; ++i) {
    got[static_cast<std::size_t>(i)] = static_cast<double>(bf16_decode(y[i]));
    norm += f64[static_cast<std::size_t>(i)] * f64[static_cast<std::size_t>(i)];
  }
  if (norm > 0.0) {
    const double diff = cos_diff(got, f64);
    EXPECT_LE(diff, moe_f64_bound(H, p.cfg.I)) << "float64 of the unquantized math";
    if (std::getenv("MEGAMOE_TEST_VERBOSE")) std::printf("[diff] %.3g\n", diff);
  }
  for (int64_t t = 0; t < T; ++t) {
    bool dropped = true;
    for (int64_t j = 0; j < b.k; ++j) dropped = dropped && b.idx[static_cast<std::size_t>(t * b.k + j)] == -1;
    if (!dropped) continue;
    for (int64_t h = 0; h < H; ++h) {
      ASSERT_EQ(y[t * H + h], 0x0000) << "token " << t << " has every slot dropped";
    }
  }
}

}  // namespace mmt
