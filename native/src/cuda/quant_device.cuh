// Device pieces of the activation quantizer (docs/NUMERICS.md section 2) shared by the standalone
// quantize kernel (quant_kernels.cu) and the MoE layer's first launch (moe_kernels.cu).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/formats.h"
#include "cuda/bf16_unpack.cuh"

namespace megamoe::cuda {

// W consecutive elements (16 bytes) as floats.
template <typename T>
struct Vec;
template <>
struct Vec<__nv_bfloat16> {
  static constexpr int W = 8;
  __device__ __forceinline__ static void load(const __nv_bfloat16* p, float* v) {
    unpack_bf16x8(__ldg(reinterpret_cast<const uint4*>(p)), v);
  }
};
template <>
struct Vec<float> {
  static constexpr int W = 4;
  __device__ __forceinline__ static void load(const float* p, float* v) {
    const float4 raw = __ldg(reinterpret_cast<const float4*>(p));
    v[0] = raw.x, v[1] = raw.y, v[2] = raw.z, v[3] = raw.w;
  }
};

// Two floats -> two FP8 codes (low byte = a), saturating, round to nearest even.
__device__ __forceinline__ uint32_t fp8x2(float a, float b) {
  return static_cast<uint32_t>(__nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3));
}
__device__ __forceinline__ float scale_of(float amax, bool ue8m0) {
  float sf = fmaxf(amax, 1e-4f) / 448.0f;
  if (ue8m0) sf = round_up_to_power_of_two(sf);
  return sf;
}

// One thread's 16 consecutive elements of row `row` (chunk `chunk` of 16): 8 consecutive lanes hold
// one 128-column group and reduce its amax by shuffles, so all 32 lanes of the warp must call this
// together (`valid` false for lanes past the data). Returns whether this thread's elements hold a NaN
// or an infinity (for the checked quantizer; callers that ignore it pay nothing).
template <typename T>
__device__ __forceinline__ bool quantize_act_chunk16(const T* __restrict__ x, uint8_t* __restrict__ q,
                                                     float* __restrict__ scales, uint64_t row, uint32_t chunk,
                                                     bool valid, uint32_t k, uint32_t groups, bool ue8m0) {
  constexpr int W = Vec<T>::W;
  float v[16];
  if (valid) {
    const T* src = x + row * k + chunk * 16u;
#pragma unroll
    for (int i = 0; i < 16 / W; ++i) Vec<T>::load(src + i * W, v + i * W);
  } else {
#pragma unroll
    for (int i = 0; i < 16; ++i) v[i] = 0.0f;
  }
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < 16; ++i) amax = fmaxf(amax, fabsf(v[i]));
#pragma unroll
  for (int o = 4; o >= 1; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
  const float sf = scale_of(amax, ue8m0);
  const float inv = 1.0f / sf;
  if (!valid) return false;
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    w[i] = fp8x2(v[4 * i] * inv, v[4 * i + 1] * inv) | (fp8x2(v[4 * i + 2] * inv, v[4 * i + 3] * inv) << 16);
  }
  *reinterpret_cast<uint4*>(q + row * k + chunk * 16u) = make_uint4(w[0], w[1], w[2], w[3]);
  if ((chunk & 7u) == 0) scales[row * groups + chunk / 8u] = sf;
  bool nonfinite = false;
#pragma unroll
  for (int i = 0; i < 16; ++i) nonfinite |= is_nonfinite(v[i]);
  return nonfinite;
}

}  // namespace megamoe::cuda
