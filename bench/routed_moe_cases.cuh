// Benchmark cases of the routed GEMM, expert specialization and the fused MoE layer (included by
// megamoe_bench.cu after Bench). Each compares against a same-run reference:
//   routed/...  routed GEMM (routing metadata + GEMM, from unsorted tokens) vs the grouped
//               contiguous GEMM on the same slots already expanded and padded (its gather not timed);
//   es/...      the routed GEMM with expert specialization vs the same kernel with one fixed 128x128
//               tile (skewed routing), and at decode vs the masked kernel's effective GB/s;
//   moe/...     the fused layer (3 launches) vs the composed path from this library's own kernels:
//               quantize, routed up GEMM, SwiGLU + re-quant, routed down GEMM, weighted combine.
#pragma once

#include <random>
#include <set>

namespace routed_cases {

// Host routing: uniform (distinct experts per token) or skewed (70% of the experts get 1-32 slots,
// the rest share the remainder).
std::vector<int32_t> routing(int64_t T, int64_t k, int64_t E, bool skewed, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> idx(static_cast<size_t>(T * k));
  std::vector<int32_t> perm(static_cast<size_t>(E));
  std::vector<int64_t> budget(static_cast<size_t>(E), 0);
  const int64_t small = E * 7 / 10;
  for (int64_t e = 0; e < small; ++e) budget[static_cast<size_t>(e)] = 1 + static_cast<int64_t>(rng() % 32);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t e = 0; e < E; ++e) perm[static_cast<size_t>(e)] = static_cast<int32_t>(e);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = j + static_cast<int64_t>(rng() % static_cast<uint64_t>(E - j));
      std::swap(perm[static_cast<size_t>(j)], perm[static_cast<size_t>(r)]);
      int32_t e = perm[static_cast<size_t>(j)];
      if (skewed) {
        if (e < small && budget[static_cast<size_t>(e)] > 0) {
          --budget[static_cast<size_t>(e)];
        } else {
          e = static_cast<int32_t>(small + static_cast<int64_t>(rng() % static_cast<uint64_t>(E - small)));
        }
      }
      idx[static_cast<size_t>(t * k + j)] = e;
    }
  }
  return idx;
}

struct RoutedOperands {
  int64_t T, k, E, n, kd;
  DevMem a, sa, b, sb, w, idx, d;
  RoutedOperands(int64_t T_, int64_t k_, int64_t E_, int64_t n_, int64_t kd_, const std::vector<int32_t>& routing)
      : T(T_), k(k_), E(E_), n(n_), kd(kd_), a(T * kd), sa(T * (kd / 128) * 4), b(E * n * kd),
        sb(E * (n / 128) * (kd / 128) * 4), w(T * k * 4), idx(T * k * 4), d(T * k * n * 2) {
    random_fp8(a), random_scales(sa), random_fp8(b), random_scales(sb);
    fill_float<<<256, 256>>>(w.as<float>(), T * k, g_seed++, 0.1f, 1.0f);
    CUDA_OK(cudaMemcpy(idx.p, routing.data(), routing.size() * 4, cudaMemcpyHostToDevice));
  }
  // One timed call: routing metadata + GEMM.
  std::function<void()> call(megamoe_context_t ctx, uint32_t flags, megamoe_routed_plan_t& plan) {
    MM_OK(megamoe_routed_plan_create(ctx, T, static_cast<int32_t>(k), static_cast<int32_t>(E), n, kd, flags, &plan));
    at = tensor(a.p, MEGAMOE_DTYPE_FP8_E4M3, {T, kd}), st = tensor(sa.p, MEGAMOE_DTYPE_FP32, {T, kd / 128});
    bt = tensor(b.p, MEGAMOE_DTYPE_FP8_E4M3, {E, n, kd}), sbt = tensor(sb.p, MEGAMOE_DTYPE_FP32, {E, n / 128, kd / 128});
    it = tensor(idx.p, MEGAMOE_DTYPE_INT32, {T, k}), wt = tensor(w.p, MEGAMOE_DTYPE_FP32, {T, k});
    dt = tensor(d.p, MEGAMOE_DTYPE_BF16, {T, k, n});
    megamoe_routed_plan_t p = plan;
    return [this, p] { MM_OK(megamoe_gemm_routed(p, &at, &st, &bt, &sbt, &it, &wt, nullptr, &dt, nullptr)); };
  }
  megamoe_tensor_t at{}, st{}, bt{}, sbt{}, it{}, wt{}, dt{};
};

void add(Bench& bench, Result r, const std::string& ref_name, double ref_value, const char* unit) {
  r.ref_name = ref_name;
  r.ref_value = ref_value;
  r.ref_unit = unit;
  print_result(r);
  bench.results.push_back(r);
}

// routed vs contiguous, identical slots (uniform routing, 32 experts, top-8).
void routed_vs_contiguous(Bench& bench, int64_t T, int64_t n, int64_t kd) {
  const int64_t k = 8, E = 32;
  const std::string name = "routed/t" + std::to_string(T) + "_e32_k8_n" + std::to_string(n) + "_k" + std::to_string(kd);
  if (!bench.wanted(name)) return;
  const auto r = routing(T, k, E, false, 7 + T);
  RoutedOperands op(T, k, E, n, kd, r);
  megamoe_routed_plan_t plan = nullptr;
  const double us = bench.timer.median_us(op.call(bench.ctx, MEGAMOE_PLAN_DEFAULT, plan));
  megamoe_routed_plan_destroy(plan);
  // The same slots expanded and grouped by expert, each expert padded to 128 rows (m_indices -1).
  std::vector<int64_t> count(static_cast<size_t>(E), 0);
  for (int32_t e : r) ++count[static_cast<size_t>(e)];
  std::vector<int32_t> m_indices;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t padded = (count[static_cast<size_t>(e)] + 127) / 128 * 128;
    for (int64_t i = 0; i < padded; ++i) m_indices.push_back(i < count[static_cast<size_t>(e)] ? int32_t(e) : -1);
  }
  const int64_t m = static_cast<int64_t>(m_indices.size());
  DevMem a(m * kd), sa(m * (kd / 128) * 4), d(m * n * 2), mi(m * 4);
  random_fp8(a), random_scales(sa);
  CUDA_OK(cudaMemcpy(mi.p, m_indices.data(), m_indices.size() * 4, cudaMemcpyHostToDevice));
  const auto at = tensor(a.p, MEGAMOE_DTYPE_FP8_E4M3, {m, kd}), st = tensor(sa.p, MEGAMOE_DTYPE_FP32, {m, kd / 128});
  const auto it = tensor(mi.p, MEGAMOE_DTYPE_INT32, {m}), dt = tensor(d.p, MEGAMOE_DTYPE_BF16, {m, n});
  const double cus = bench.timer.median_us(
      [&] { MM_OK(megamoe_gemm_grouped_contiguous(bench.ctx, &at, &st, &op.bt, &op.sbt, &it, &dt, nullptr)); });
  const double flops = 2.0 * T * k * n * kd;
  Result res;
  res.name = name;
  res.median_us = us;
  res.tflops = flops / us * 1e-6;
  res.gbps = double(E * n * kd + T * kd + T * k * n * 2) / us * 1e-3;
  add(bench, res, "contiguous", flops / cus * 1e-6, "TFLOPS");
}

// Expert specialization vs one fixed 128x128 tile on the skewed routing (256 experts).
void es_vs_fixed(Bench& bench, int64_t T, int64_t n, int64_t kd) {
  const int64_t k = 8, E = 256;
  const std::string name = "es/skewed_t" + std::to_string(T) + "_e256_k8_n" + std::to_string(n) + "_k" + std::to_string(kd);
  if (!bench.wanted(name)) return;
  RoutedOperands op(T, k, E, n, kd, routing(T, k, E, true, 11 + T));
  megamoe_routed_plan_t es = nullptr, fixed = nullptr;
  const double us = bench.timer.median_us(op.call(bench.ctx, MEGAMOE_PLAN_EXPERT_SPECIALIZATION, es));
  setenv("MEGAMOE_CUDA_GEMM_TILE", "128x128x1", 1);
  const double fus = bench.timer.median_us(op.call(bench.ctx, MEGAMOE_PLAN_DEFAULT, fixed));
  unsetenv("MEGAMOE_CUDA_GEMM_TILE");
  megamoe_routed_plan_destroy(es);
  megamoe_routed_plan_destroy(fixed);
  const double flops = 2.0 * T * k * n * kd;
  Result res;
  res.name = name;
  res.median_us = us;
  res.tflops = flops / us * 1e-6;
  res.gbps = double(E * n * kd + T * kd + T * k * n * 2) / us * 1e-3;
  add(bench, res, "fixed 128x128", flops / fus * 1e-6, "TFLOPS");
}

// Decode: T = 128, top-8 over 32 experts with expert specialization vs the masked kernel on the
// same per-expert counts (its effective GB/s: weights + valid activations read once, output once).
void es_decode(Bench& bench, int64_t n, int64_t kd) {
  const int64_t T = 128, k = 8, E = 32;
  const std::string name = "es/decode_t128_e32_k8_n" + std::to_string(n) + "_k" + std::to_string(kd);
  if (!bench.wanted(name)) return;
  const auto r = routing(T, k, E, false, 5);
  RoutedOperands op(T, k, E, n, kd, r);
  megamoe_routed_plan_t plan = nullptr;
  const double us = bench.timer.median_us(op.call(bench.ctx, MEGAMOE_PLAN_EXPERT_SPECIALIZATION, plan));
  megamoe_routed_plan_destroy(plan);
  std::vector<int32_t> count(static_cast<size_t>(E), 0);
  for (int32_t e : r) ++count[static_cast<size_t>(e)];
  const int64_t max_m = 128;
  DevMem a(E * max_m * kd), sa(E * max_m * (kd / 128) * 4), d(E * max_m * n * 2), mm(E * 4);
  random_fp8(a), random_scales(sa);
  CUDA_OK(cudaMemcpy(mm.p, count.data(), count.size() * 4, cudaMemcpyHostToDevice));
  const auto at = tensor(a.p, MEGAMOE_DTYPE_FP8_E4M3, {E, max_m, kd});
  const auto st = tensor(sa.p, MEGAMOE_DTYPE_FP32, {E, max_m, kd / 128});
  const auto mt = tensor(mm.p, MEGAMOE_DTYPE_INT32, {E}), dt = tensor(d.p, MEGAMOE_DTYPE_BF16, {E, max_m, n});
  const double mus = bench.timer.median_us([&] {
    MM_OK(megamoe_gemm_grouped_masked(bench.ctx, &at, &st, &op.bt, &op.sbt, &mt, T * k / E, &dt, nullptr));
  });
  const double bytes = double(E * n * kd + T * k * kd + T * k * n * 2);
  Result res;
  res.name = name;
  res.median_us = us;
  res.tflops = 2.0 * T * k * n * kd / us * 1e-6;
  res.gbps = bytes / us * 1e-3;
  add(bench, res, "masked", bytes / mus * 1e-3, "GB/s");
}

// ---------------------------------------------------------------------------------------------
// The composed MoE path's own glue kernels (bench-only): SwiGLU + top-k weight + 1x128 FP8
// re-quantization of the up GEMM's BF16 rows, and the weighted combine of the down GEMM's rows.
// ---------------------------------------------------------------------------------------------
__global__ void swiglu_quant(const uint16_t* h, const float* w, uint8_t* q, float* s, int64_t rows, int64_t inter,
                             float rsf) {
  const int64_t groups = inter / 128;
  const int64_t warp = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= rows * groups) return;
  const int64_t row = warp / groups, g = warp % groups;
  float v[4], amax = 0.0f;
  for (int i = 0; i < 4; ++i) {
    const int64_t c = g * 128 + lane + 32 * i;
    uint32_t gb = uint32_t(h[row * 2 * inter + c]) << 16, ub = uint32_t(h[row * 2 * inter + inter + c]) << 16;
    float gate, up;
    memcpy(&gate, &gb, 4);
    memcpy(&up, &ub, 4);
    v[i] = gate / (1.0f + expf(-gate)) * up * (w[row] * rsf);
    amax = fmaxf(amax, fabsf(v[i]));
  }
  for (int o = 16; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
  const float sf = fmaxf(amax, 1e-4f) / 448.0f;
  for (int i = 0; i < 4; ++i) {
    q[row * inter + g * 128 + lane + 32 * i] = __nv_cvt_float_to_fp8(v[i] / sf, __NV_SATFINITE, __NV_E4M3);
  }
  if (lane == 0) s[row * groups + g] = sf;
}

__global__ void combine(const uint16_t* z, uint16_t* y, int64_t tokens, int64_t k, int64_t hidden) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= tokens * hidden) return;
  const int64_t t = i / hidden, c = i % hidden;
  float sum = 0.0f;
  for (int64_t j = 0; j < k; ++j) {
    uint32_t b = uint32_t(z[(t * k + j) * hidden + c]) << 16;
    float f;
    memcpy(&f, &b, 4);
    sum += f;
  }
  uint32_t bits;
  memcpy(&bits, &sum, 4);
  y[i] = static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

// Fused layer vs the composed path, DeepSeek-V3 experts (H 7168, I 2048), top-8; `flags` adds
// MEGAMOE_MOE_* options (expert specialization: "_esup" for the up-projection, "_es" for both).
void moe_layer(Bench& bench, int64_t T, int64_t E, uint32_t flags = MEGAMOE_MOE_DEFAULT) {
  const int64_t k = 8, H = 7168, I = 2048;
  const bool es_up = (flags & MEGAMOE_MOE_EXPERT_SPECIALIZATION_UP) != 0;
  const bool es_down = (flags & MEGAMOE_MOE_EXPERT_SPECIALIZATION_DOWN) != 0;
  const std::string name = "moe/deepseek_e" + std::to_string(E) + "_k8_t" + std::to_string(T) +
                           (es_up && es_down ? "_es" : es_up ? "_esup" : es_down ? "_esdown" : "");
  if (!bench.wanted(name)) return;
  DevMem w13(E * 2 * I * H), s13(E * (2 * I / 128) * (H / 128) * 4), w2(E * H * I), s2(E * (H / 128) * (I / 128) * 4);
  random_fp8(w13), random_scales(s13), random_fp8(w2), random_scales(s2);
  megamoe_moe_config_t cfg{};
  cfg.struct_size = sizeof cfg;
  cfg.flags = flags;
  cfg.num_experts = int32_t(E);
  cfg.top_k = int32_t(k);
  cfg.hidden = H;
  cfg.intermediate = I;
  cfg.max_tokens = T;
  cfg.activation_alpha = 1.0f;
  cfg.routed_scaling_factor = 2.5f;
  const auto w13t = tensor(w13.p, MEGAMOE_DTYPE_FP8_E4M3, {E, 2 * I, H});
  const auto s13t = tensor(s13.p, MEGAMOE_DTYPE_FP32, {E, 2 * I / 128, H / 128});
  const auto w2t = tensor(w2.p, MEGAMOE_DTYPE_FP8_E4M3, {E, H, I});
  const auto s2t = tensor(s2.p, MEGAMOE_DTYPE_FP32, {E, H / 128, I / 128});
  megamoe_moe_layer_t layer = nullptr;
  MM_OK(megamoe_moe_layer_create(bench.ctx, &cfg, &w13t, &s13t, &w2t, &s2t, nullptr, &layer));
  const auto r = routing(T, k, E, false, 3 + T);
  DevMem x(T * H * 2), idx(T * k * 4), w(T * k * 4), y(T * H * 2);
  fill_bf16<<<1024, 256>>>(x.as<uint16_t>(), T * H, g_seed++);
  fill_float<<<256, 256>>>(w.as<float>(), T * k, g_seed++, 0.05f, 0.3f);
  CUDA_OK(cudaMemcpy(idx.p, r.data(), r.size() * 4, cudaMemcpyHostToDevice));
  const auto xt = tensor(x.p, MEGAMOE_DTYPE_BF16, {T, H}), it = tensor(idx.p, MEGAMOE_DTYPE_INT32, {T, k});
  const auto wt = tensor(w.p, MEGAMOE_DTYPE_FP32, {T, k}), yt = tensor(y.p, MEGAMOE_DTYPE_BF16, {T, H});
  const double us = bench.timer.median_us(
      [&] { MM_OK(megamoe_moe_layer_forward(layer, &xt, nullptr, &it, &wt, &yt, nullptr, nullptr, nullptr)); });
  megamoe_moe_layer_destroy(layer);

  // Composed: 7 launches through the public API and the glue kernels above, its routed plans with the
  // layer's expert specialization (a fair reference for the _esup / _es rows).
  DevMem qx(T * H), sx(T * (H / 128) * 4), hbuf(T * k * 2 * I * 2), qa(T * k * I), sa(T * k * (I / 128) * 4),
      z(T * k * H * 2), slot_experts(T * k * 4);
  CUDA_OK(cudaMemcpy(slot_experts.p, r.data(), r.size() * 4, cudaMemcpyHostToDevice));
  megamoe_routed_plan_t up = nullptr, down = nullptr;
  const uint32_t up_flags = es_up ? MEGAMOE_PLAN_EXPERT_SPECIALIZATION : 0u;
  const uint32_t down_flags = es_down ? MEGAMOE_PLAN_EXPERT_SPECIALIZATION : 0u;
  MM_OK(megamoe_routed_plan_create(bench.ctx, T, int32_t(k), int32_t(E), 2 * I, H, up_flags, &up));
  MM_OK(megamoe_routed_plan_create(bench.ctx, T * k, 1, int32_t(E), H, I, down_flags, &down));
  const auto qxt = tensor(qx.p, MEGAMOE_DTYPE_FP8_E4M3, {T, H}), sxt = tensor(sx.p, MEGAMOE_DTYPE_FP32, {T, H / 128});
  const auto ht = tensor(hbuf.p, MEGAMOE_DTYPE_BF16, {T, k, 2 * I});
  const auto qat = tensor(qa.p, MEGAMOE_DTYPE_FP8_E4M3, {T * k, I});
  const auto sat = tensor(sa.p, MEGAMOE_DTYPE_FP32, {T * k, I / 128});
  const auto set = tensor(slot_experts.p, MEGAMOE_DTYPE_INT32, {T * k, 1});
  const auto zt = tensor(z.p, MEGAMOE_DTYPE_BF16, {T * k, 1, H});
  const double cus = bench.timer.median_us([&] {
    MM_OK(megamoe_quantize_activations(bench.ctx, &xt, &qxt, &sxt, 0, nullptr));
    MM_OK(megamoe_gemm_routed(up, &qxt, &sxt, &w13t, &s13t, &it, nullptr, nullptr, &ht, nullptr));
    swiglu_quant<<<static_cast<unsigned>((T * k * (I / 128) * 32 + 255) / 256), 256>>>(
        hbuf.as<uint16_t>(), w.as<float>(), qa.as<uint8_t>(), sa.as<float>(), T * k, I, 2.5f);
    MM_OK(megamoe_gemm_routed(down, &qat, &sat, &w2t, &s2t, &set, nullptr, nullptr, &zt, nullptr));
    combine<<<static_cast<unsigned>((T * H + 255) / 256), 256>>>(z.as<uint16_t>(), y.as<uint16_t>(), T, k, H);
  });
  megamoe_routed_plan_destroy(up);
  megamoe_routed_plan_destroy(down);

  const double flops = 2.0 * T * k * (2.0 * I * H + H * I);
  // Only the experts the batch routes to must be read: the weight floor of small batches.
  const double active = static_cast<double>(std::set<int32_t>(r.begin(), r.end()).size());
  const double weights = active * (2 * I * H + H * I);
  Result res;
  res.name = name;
  res.median_us = us;
  res.tflops = flops / us * 1e-6;
  res.gbps = (weights + T * H * 4.0) / us * 1e-3;
  res.extra = {{"active_experts", active}, {"active_weight_mb", weights * 1e-6}};
  add(bench, res, "composed", cus, "us");
}

}  // namespace routed_cases
