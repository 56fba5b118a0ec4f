// Memory-bound kernels: FP8 block quantization / dequantization of activations (1x128) and
// weights (128x128), and the gate/up row interleave. Bit for bit what docs/NUMERICS.md section 2
// specifies (and the CPU backend computes): float32 amax ignoring NaN (fmaxf), IEEE division,
// one multiplication by the inverse scale, cvt.rn.satfinite.e4m3x2.f32 for the FP8 rounding.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/formats.h"
#include "core/layouts.h"
#include "cuda/cuda_utils.h"
#include "cuda/transforms.h"
#include "cuda/quant_device.cuh"

namespace megamoe::cuda {
namespace {

constexpr int kThreads = 256;

// ---------------------------------------------------------------------------------------------
// Element helpers
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ float load_elem(const __nv_bfloat16* p, uint64_t i) {
  return bf16_to_float(reinterpret_cast<const uint16_t*>(p)[i]);
}
__device__ __forceinline__ float load_elem(const float* p, uint64_t i) { return p[i]; }

__device__ __forceinline__ uint8_t fp8x1(float a) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(a, __NV_SATFINITE, __NV_E4M3));
}
// Four FP8 codes packed in a word -> floats (exact).
__device__ __forceinline__ void fp8x4_to_float(uint32_t w, float* v) {
  const __half2_raw lo = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(w & 0xFFFFu), __NV_E4M3);
  const __half2_raw hi = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(w >> 16), __NV_E4M3);
  const float2 a = __half22float2(__half2(lo));
  const float2 b = __half22float2(__half2(hi));
  v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
}


__device__ __forceinline__ void store_out(__nv_bfloat16* p, uint64_t i, float v) {
  reinterpret_cast<uint16_t*>(p)[i] = float_to_bf16(v);
}
__device__ __forceinline__ void store_out(float* p, uint64_t i, float v) { p[i] = v; }

// ---------------------------------------------------------------------------------------------
// Activations, 1x128 groups
// ---------------------------------------------------------------------------------------------
// Fast path (K % 16 == 0): one thread per 16 elements, 8 threads per group, 16-byte loads/stores.
template <typename T>
__global__ void __launch_bounds__(kThreads) quantize_act_vec_kernel(const T* __restrict__ x, uint8_t* __restrict__ q,
                                                                    float* __restrict__ scales, uint32_t rows,
                                                                    uint32_t k, uint32_t groups, bool ue8m0) {
  const uint64_t t = static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const uint64_t per_row = static_cast<uint64_t>(groups) * 8;
  const uint64_t row = t / per_row;
  const uint32_t chunk = static_cast<uint32_t>(t - row * per_row);
  quantize_act_chunk16(x, q, scales, row, chunk, row < rows && chunk * 16u < k, k, groups, ue8m0);
}

// Group g of row `row` with scalar accesses (any K): all 32 lanes of a warp call this together (the
// amax is reduced by shuffles). Returns whether this lane's elements hold a NaN or an infinity.
template <typename T>
__device__ __forceinline__ bool quantize_act_group32(const T* __restrict__ x, uint8_t* __restrict__ q,
                                                     float* __restrict__ scales, uint64_t row, uint32_t g,
                                                     uint32_t lane, uint32_t k, uint32_t groups, bool ue8m0) {
  float v[4];
  float amax = 0.0f;
  bool nonfinite = false;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t col = g * 128u + lane + 32u * j;
    v[j] = col < k ? load_elem(x, row * k + col) : 0.0f;
    amax = fmaxf(amax, fabsf(v[j]));
    nonfinite |= is_nonfinite(v[j]);
  }
#pragma unroll
  for (int o = 16; o >= 1; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
  const float sf = scale_of(amax, ue8m0);
  const float inv = 1.0f / sf;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t col = g * 128u + lane + 32u * j;
    if (col < k) q[row * k + col] = fp8x1(v[j] * inv);
  }
  if (lane == 0) scales[row * groups + g] = sf;
  return nonfinite;
}

// Any K: one warp per group, scalar accesses.
template <typename T>
__global__ void __launch_bounds__(kThreads) quantize_act_scalar_kernel(const T* __restrict__ x, uint8_t* __restrict__ q,
                                                                       float* __restrict__ scales, uint32_t rows,
                                                                       uint32_t k, uint32_t groups, bool ue8m0) {
  const uint64_t warp = (static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x) / 32;
  const uint32_t lane = threadIdx.x % 32;
  const uint64_t row = warp / groups;
  const uint32_t g = static_cast<uint32_t>(warp - row * groups);
  if (row >= rows) return;  // whole warp
  quantize_act_group32(x, q, scales, row, g, lane, k, groups, ue8m0);
}

// The checked quantizer (megamoe_quantize_activations_checked): the same per-chunk (kVec, K % 16 == 0)
// or per-group code, but one CTA per row (grid-stride over rows), so that the row's non-finite flag is
// reduced inside the CTA and counted by one atomicAdd; in the kernels above a row spans several CTAs
// once K > 4096. Loop bounds depend on the row only, so every thread reaches __syncthreads_or, and
// every lane of a warp runs each step (the shuffles need all 32).
template <bool kVec, typename T>
__global__ void __launch_bounds__(kThreads) quantize_act_checked_kernel(const T* __restrict__ x, uint8_t* __restrict__ q,
                                                                        float* __restrict__ scales, uint32_t rows,
                                                                        uint32_t k, uint32_t groups, bool ue8m0,
                                                                        int32_t* __restrict__ nonfinite_rows) {
  for (uint64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    bool nonfinite = false;
    if constexpr (kVec) {
      for (uint32_t c0 = 0; c0 < groups * 8u; c0 += kThreads) {
        const uint32_t chunk = c0 + threadIdx.x;
        nonfinite |= quantize_act_chunk16(x, q, scales, row, chunk, chunk * 16u < k, k, groups, ue8m0);
      }
    } else {
      for (uint32_t g = threadIdx.x / 32; g < groups; g += kThreads / 32) {
        nonfinite |= quantize_act_group32(x, q, scales, row, g, threadIdx.x % 32, k, groups, ue8m0);
      }
    }
    if (__syncthreads_or(nonfinite) && threadIdx.x == 0) atomicAdd(nonfinite_rows, 1);
  }
}

// E FP8 codes -> E outputs = 16 bytes of T per thread (E = 8 for BF16, 4 for FP32), so that both the
// loads and the 16-byte stores of a warp are contiguous.
template <typename T>
struct DequantWidth {
  static constexpr int E = 16 / static_cast<int>(sizeof(T));
};

template <typename T>
__device__ __forceinline__ void dequant_store(const uint8_t* q, float sf, T* dst) {
  constexpr int E = DequantWidth<T>::E;
  float v[8];
  if constexpr (E == 8) {
    const uint2 raw = __ldg(reinterpret_cast<const uint2*>(q));
    fp8x4_to_float(raw.x, v);
    fp8x4_to_float(raw.y, v + 4);
  } else {
    fp8x4_to_float(__ldg(reinterpret_cast<const uint32_t*>(q)), v);
  }
#pragma unroll
  for (int i = 0; i < E; ++i) v[i] = v[i] * sf;
  if constexpr (E == 8) {
    uint32_t o[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      o[i] = static_cast<uint32_t>(float_to_bf16(v[2 * i])) | (static_cast<uint32_t>(float_to_bf16(v[2 * i + 1])) << 16);
    }
    *reinterpret_cast<uint4*>(dst) = make_uint4(o[0], o[1], o[2], o[3]);
  } else {
    *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) dequantize_act_vec_kernel(const uint8_t* __restrict__ q,
                                                                      const float* __restrict__ scales,
                                                                      T* __restrict__ out, uint32_t rows, uint32_t k,
                                                                      uint32_t groups) {
  constexpr int E = DequantWidth<T>::E;
  const uint64_t t = static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const uint64_t chunks = k / E;
  const uint64_t row = t / chunks;
  const uint32_t chunk = static_cast<uint32_t>(t - row * chunks);
  if (row >= rows) return;
  const uint32_t col = chunk * E;
  const float sf = __ldg(scales + row * groups + col / 128u);
  dequant_store(q + row * k + col, sf, out + row * k + col);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) dequantize_act_scalar_kernel(const uint8_t* __restrict__ q,
                                                                         const float* __restrict__ scales,
                                                                         T* __restrict__ out, uint64_t total,
                                                                         uint32_t k, uint32_t groups) {
  const uint64_t i = static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= total) return;
  const uint64_t row = i / k;
  const uint32_t col = static_cast<uint32_t>(i - row * k);
  store_out(out, i, fp8_e4m3_to_float(q[i]) * scales[row * groups + col / 128u]);
}

// ---------------------------------------------------------------------------------------------
// Weights, 128x128 blocks: one CTA of 256 threads per block, 64 values per thread in registers.
// ---------------------------------------------------------------------------------------------
template <typename T, bool kVec>
__global__ void __launch_bounds__(kThreads) quantize_weights_kernel(const T* __restrict__ w, uint8_t* __restrict__ q,
                                                                    float* __restrict__ scales, uint32_t n, uint32_t k,
                                                                    uint32_t n_blocks, uint32_t k_blocks, bool ue8m0) {
  constexpr int W = Vec<T>::W;             // elements per 16-byte access
  constexpr int kThreadsPerRow = 128 / W;  // 16 (BF16) or 32 (FP32)
  constexpr int kRowsPerPass = kThreads / kThreadsPerRow;
  constexpr int kPasses = 128 / kRowsPerPass;  // kPasses * W == 64
  __shared__ float warp_max[kThreads / 32];

  const uint32_t block = blockIdx.x;
  const uint32_t kb = block % k_blocks;
  const uint32_t nb = (block / k_blocks) % n_blocks;
  const uint64_t e = block / (static_cast<uint64_t>(k_blocks) * n_blocks);
  const uint64_t base = (e * n) * k;
  const uint32_t row0 = nb * 128u, col0 = kb * 128u;

  float v[64];
  float amax = 0.0f;
  if constexpr (kVec) {
    const uint32_t col = col0 + (threadIdx.x % kThreadsPerRow) * W;
#pragma unroll
    for (int p = 0; p < kPasses; ++p) {
      const uint32_t row = row0 + p * kRowsPerPass + threadIdx.x / kThreadsPerRow;
      if (row < n && col < k) {
        Vec<T>::load(w + base + static_cast<uint64_t>(row) * k + col, v + p * W);
      } else {
#pragma unroll
        for (int i = 0; i < W; ++i) v[p * W + i] = 0.0f;
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < 64; ++i) {
      const uint32_t idx = threadIdx.x + kThreads * i;
      const uint32_t row = row0 + idx / 128u, col = col0 + idx % 128u;
      v[i] = (row < n && col < k) ? load_elem(w, base + static_cast<uint64_t>(row) * k + col) : 0.0f;
    }
  }
#pragma unroll
  for (int i = 0; i < 64; ++i) amax = fmaxf(amax, fabsf(v[i]));
#pragma unroll
  for (int o = 16; o >= 1; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = amax;
  __syncthreads();
  amax = warp_max[0];
#pragma unroll
  for (int i = 1; i < kThreads / 32; ++i) amax = fmaxf(amax, warp_max[i]);
  const float sf = scale_of(amax, ue8m0);
  const float inv = 1.0f / sf;
  if (threadIdx.x == 0) scales[(e * n_blocks + nb) * k_blocks + kb] = sf;

  if constexpr (kVec) {
    const uint32_t col = col0 + (threadIdx.x % kThreadsPerRow) * W;
#pragma unroll
    for (int p = 0; p < kPasses; ++p) {
      const uint32_t row = row0 + p * kRowsPerPass + threadIdx.x / kThreadsPerRow;
      if (row >= n || col >= k) continue;
      uint8_t* dst = q + base + static_cast<uint64_t>(row) * k + col;
      const float* s = v + p * W;
      if constexpr (W == 8) {
        const uint32_t lo = fp8x2(s[0] * inv, s[1] * inv) | (fp8x2(s[2] * inv, s[3] * inv) << 16);
        const uint32_t hi = fp8x2(s[4] * inv, s[5] * inv) | (fp8x2(s[6] * inv, s[7] * inv) << 16);
        *reinterpret_cast<uint2*>(dst) = make_uint2(lo, hi);
      } else {
        *reinterpret_cast<uint32_t*>(dst) = fp8x2(s[0] * inv, s[1] * inv) | (fp8x2(s[2] * inv, s[3] * inv) << 16);
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < 64; ++i) {
      const uint32_t idx = threadIdx.x + kThreads * i;
      const uint32_t row = row0 + idx / 128u, col = col0 + idx % 128u;
      if (row < n && col < k) q[base + static_cast<uint64_t>(row) * k + col] = fp8x1(v[i] * inv);
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) dequantize_weights_kernel(const uint8_t* __restrict__ q,
                                                                      const float* __restrict__ scales,
                                                                      T* __restrict__ out, uint64_t total_chunks,
                                                                      uint32_t n, uint32_t k, uint32_t n_blocks,
                                                                      uint32_t k_blocks) {
  // One thread per E elements of a row (K % 16 == 0) or per element.
  constexpr int E = DequantWidth<T>::E;
  const uint64_t t = static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= total_chunks) return;
  const bool vec = (k % 16u) == 0;
  const uint64_t first = t * (vec ? E : 1);
  const uint64_t row_all = first / k;  // e * n + row
  const uint32_t col = static_cast<uint32_t>(first - row_all * k);
  const uint64_t e = row_all / n;
  const uint32_t row = static_cast<uint32_t>(row_all - e * n);
  const float sf = __ldg(scales + (e * n_blocks + row / 128u) * k_blocks + col / 128u);
  if (!vec) {
    store_out(out, first, fp8_e4m3_to_float(q[first]) * sf);
    return;
  }
  dequant_store(q + first, sf, out + first);
}

// ---------------------------------------------------------------------------------------------
// Gate/up interleave: a row gather. kUnit bytes per thread (16 when rows allow, else 1).
// ---------------------------------------------------------------------------------------------
template <typename Unit>
__global__ void __launch_bounds__(kThreads) interleave_kernel(const Unit* __restrict__ src, Unit* __restrict__ dst,
                                                              uint64_t total_units, uint64_t units_per_row,
                                                              int64_t rows_per_expert, int64_t intermediate,
                                                              bool inverse) {
  const uint64_t t = static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= total_units) return;
  const uint64_t row = t / units_per_row;
  const uint64_t unit = t - row * units_per_row;
  const int64_t e = static_cast<int64_t>(row) / rows_per_expert;
  const int64_t r = static_cast<int64_t>(row) - e * rows_per_expert;
  // Output row r holds source row canonical_row(r) (forward) or interleaved_row(r) (inverse).
  const int64_t s = inverse ? interleaved_row(r, intermediate) : canonical_row(r, intermediate);
  dst[t] = src[(static_cast<uint64_t>(e * rows_per_expert + s)) * units_per_row + unit];
}

unsigned grid_for(uint64_t threads) { return static_cast<unsigned>((threads + kThreads - 1) / kThreads); }

// The most CTAs of the checked quantizer (one row each, grid-stride beyond): enough to fill any GPU.
constexpr uint32_t kMaxCheckedCtas = 65536;

template <typename T>
void launch_quantize_activations(const T* x, uint8_t* q, float* s, uint32_t rows, uint32_t k, uint32_t groups,
                                 bool ue8m0, int32_t* nonfinite_rows, cudaStream_t stream) {
  const bool vec = k % 16 == 0;
  if (nonfinite_rows != nullptr) {
    const unsigned grid = rows < kMaxCheckedCtas ? rows : kMaxCheckedCtas;
    if (vec) quantize_act_checked_kernel<true><<<grid, kThreads, 0, stream>>>(x, q, s, rows, k, groups, ue8m0, nonfinite_rows);
    else quantize_act_checked_kernel<false><<<grid, kThreads, 0, stream>>>(x, q, s, rows, k, groups, ue8m0, nonfinite_rows);
    return;
  }
  const uint64_t threads = vec ? uint64_t{rows} * groups * 8 : uint64_t{rows} * groups * 32;
  if (vec) quantize_act_vec_kernel<<<grid_for(threads), kThreads, 0, stream>>>(x, q, s, rows, k, groups, ue8m0);
  else quantize_act_scalar_kernel<<<grid_for(threads), kThreads, 0, stream>>>(x, q, s, rows, k, groups, ue8m0);
}

}  // namespace

void quantize_activations(const Tensor& x, const ScaledTensor& out, bool ue8m0, int32_t* nonfinite_rows,
                          cudaStream_t stream) {
  const uint32_t rows = static_cast<uint32_t>(x.dim(0)), k = static_cast<uint32_t>(x.dim(1));
  const uint32_t groups = (k + 127) / 128;
  if (rows == 0 || k == 0) return;
  auto* q = out.data.as<uint8_t>();
  auto* s = out.scales.as<float>();
  if (x.dtype == MEGAMOE_DTYPE_BF16) {
    launch_quantize_activations(x.as<const __nv_bfloat16>(), q, s, rows, k, groups, ue8m0, nonfinite_rows, stream);
  } else {
    launch_quantize_activations(x.as<const float>(), q, s, rows, k, groups, ue8m0, nonfinite_rows, stream);
  }
  check_launch("quantize_activations kernel");
}

void dequantize_activations(const ScaledTensor& q, const Tensor& out, cudaStream_t stream) {
  const uint32_t rows = static_cast<uint32_t>(out.dim(0)), k = static_cast<uint32_t>(out.dim(1));
  const uint32_t groups = (k + 127) / 128;
  if (rows == 0 || k == 0) return;
  const auto* qp = q.data.as<const uint8_t>();
  const auto* s = q.scales.as<const float>();
  const bool vec = k % 16 == 0;
  const uint64_t total = uint64_t{rows} * k;
  const uint64_t threads = vec ? total / (out.dtype == MEGAMOE_DTYPE_BF16 ? 8 : 4) : total;
  if (out.dtype == MEGAMOE_DTYPE_BF16) {
    auto* o = out.as<__nv_bfloat16>();
    if (vec) dequantize_act_vec_kernel<<<grid_for(threads), kThreads, 0, stream>>>(qp, s, o, rows, k, groups);
    else dequantize_act_scalar_kernel<<<grid_for(threads), kThreads, 0, stream>>>(qp, s, o, total, k, groups);
  } else {
    auto* o = out.as<float>();
    if (vec) dequantize_act_vec_kernel<<<grid_for(threads), kThreads, 0, stream>>>(qp, s, o, rows, k, groups);
    else dequantize_act_scalar_kernel<<<grid_for(threads), kThreads, 0, stream>>>(qp, s, o, total, k, groups);
  }
  check_launch("dequantize_activations kernel");
}

void quantize_weights(const Tensor& w, const ScaledTensor& out, bool ue8m0, cudaStream_t stream) {
  const bool grouped = w.rank == 3;
  const uint64_t experts = grouped ? static_cast<uint64_t>(w.dim(0)) : 1;
  const uint32_t n = static_cast<uint32_t>(w.dim(grouped ? 1 : 0)), k = static_cast<uint32_t>(w.dim(grouped ? 2 : 1));
  if (experts == 0 || n == 0 || k == 0) return;
  const uint32_t n_blocks = (n + 127) / 128, k_blocks = (k + 127) / 128;
  const uint64_t blocks = experts * n_blocks * k_blocks;
  if (blocks > 0x7FFFFFFFull) fail(MEGAMOE_ERROR_UNSUPPORTED, "quantize_weights: too many 128x128 blocks (", blocks, ")");
  auto* q = out.data.as<uint8_t>();
  auto* s = out.scales.as<float>();
  const unsigned grid = static_cast<unsigned>(blocks);
  if (w.dtype == MEGAMOE_DTYPE_BF16) {
    const auto* p = w.as<const __nv_bfloat16>();
    if (k % 8 == 0) quantize_weights_kernel<__nv_bfloat16, true><<<grid, kThreads, 0, stream>>>(p, q, s, n, k, n_blocks, k_blocks, ue8m0);
    else quantize_weights_kernel<__nv_bfloat16, false><<<grid, kThreads, 0, stream>>>(p, q, s, n, k, n_blocks, k_blocks, ue8m0);
  } else {
    const auto* p = w.as<const float>();
    if (k % 4 == 0) quantize_weights_kernel<float, true><<<grid, kThreads, 0, stream>>>(p, q, s, n, k, n_blocks, k_blocks, ue8m0);
    else quantize_weights_kernel<float, false><<<grid, kThreads, 0, stream>>>(p, q, s, n, k, n_blocks, k_blocks, ue8m0);
  }
  check_launch("quantize_weights kernel");
}

void dequantize_weights(const ScaledTensor& q, const Tensor& out, cudaStream_t stream) {
  const bool grouped = out.rank == 3;
  const uint64_t experts = grouped ? static_cast<uint64_t>(out.dim(0)) : 1;
  const uint32_t n = static_cast<uint32_t>(out.dim(grouped ? 1 : 0)), k = static_cast<uint32_t>(out.dim(grouped ? 2 : 1));
  if (experts == 0 || n == 0 || k == 0) return;
  const uint32_t n_blocks = (n + 127) / 128, k_blocks = (k + 127) / 128;
  const uint64_t total = experts * n * k;
  const uint64_t chunks = k % 16 == 0 ? total / (out.dtype == MEGAMOE_DTYPE_BF16 ? 8 : 4) : total;
  const auto* qp = q.data.as<const uint8_t>();
  const auto* s = q.scales.as<const float>();
  if (out.dtype == MEGAMOE_DTYPE_BF16) {
    dequantize_weights_kernel<<<grid_for(chunks), kThreads, 0, stream>>>(qp, s, out.as<__nv_bfloat16>(), chunks, n, k,
                                                                         n_blocks, k_blocks);
  } else {
    dequantize_weights_kernel<<<grid_for(chunks), kThreads, 0, stream>>>(qp, s, out.as<float>(), chunks, n, k, n_blocks,
                                                                         k_blocks);
  }
  check_launch("dequantize_weights kernel");
}

void interleave_gate_up(const Tensor& w, const Tensor& out, bool inverse, cudaStream_t stream) {
  const bool grouped = w.rank == 3;
  const int64_t experts = grouped ? w.dim(0) : 1;
  const int64_t rows_per_expert = w.dim(grouped ? 1 : 0);
  const int64_t row_bytes = w.dim(grouped ? 2 : 1) * dtype_size(w.dtype);
  if (experts == 0 || rows_per_expert == 0 || row_bytes == 0) return;
  const int64_t intermediate = rows_per_expert / 2;
  const uint64_t rows = static_cast<uint64_t>(experts * rows_per_expert);
  if (row_bytes % 16 == 0) {
    const uint64_t units = static_cast<uint64_t>(row_bytes / 16);
    interleave_kernel<<<grid_for(rows * units), kThreads, 0, stream>>>(w.as<const uint4>(), out.as<uint4>(), rows * units,
                                                                       units, rows_per_expert, intermediate, inverse);
  } else {
    const uint64_t units = static_cast<uint64_t>(row_bytes);
    interleave_kernel<<<grid_for(rows * units), kThreads, 0, stream>>>(w.as<const uint8_t>(), out.as<uint8_t>(),
                                                                       rows * units, units, rows_per_expert,
                                                                       intermediate, inverse);
  }
  check_launch("interleave_gate_up kernel");
}

}  // namespace megamoe::cuda
