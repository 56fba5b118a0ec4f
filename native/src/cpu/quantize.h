// Quantization to FP8 with float32 scales and back (docs/NUMERICS.md section 2): 1x128 groups
// for activations, 128x128 blocks for weights. The group sizes need not divide the extents.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/backend.h"
#include "core/formats.h"
#include "cpu/quantize_kernels.h"
#include "cpu/thread_pool.h"

namespace megamoe::cpu {

// The scale of a group whose largest magnitude is amax.
inline float group_scale(float amax, bool ue8m0) {
  const float sf = std::fmax(amax, 1e-4f) / kFp8E4M3Max;
  return ue8m0 ? round_up_to_power_of_two(sf) : sf;
}

// Quantizes one group of n float32 values with its own scale (no UE8M0) and returns the scale.
inline float quantize_group(const float* x, int64_t n, uint8_t* q) {
  const float sf = group_scale(span_amax(x, n), false);
  quantize_span(x, n, 1.0f / sf, q);
  return sf;
}

// Weight matrices [count, rows, cols] of `dtype` (BF16 or FP32) -> FP8 and
// [count, ceil(rows / 128), ceil(cols / 128)] scales.
void quantize_weight_blocks(ThreadPool& pool, const void* w, megamoe_dtype_t dtype, int64_t count, int64_t rows,
                            int64_t cols, bool ue8m0, uint8_t* q, float* scales);

// nonfinite_rows: NULL, or a count incremented (wrapping like a 32-bit atomic add) by the number of
// rows of x holding a NaN or an infinity.
void quantize_activations(ThreadPool& pool, const Tensor& x, const ScaledTensor& out, bool ue8m0,
                          int32_t* nonfinite_rows = nullptr);
void dequantize_activations(ThreadPool& pool, const ScaledTensor& q, const Tensor& out);
void quantize_weights(ThreadPool& pool, const Tensor& w, const ScaledTensor& out, bool ue8m0);
void dequantize_weights(ThreadPool& pool, const ScaledTensor& q, const Tensor& out);

}  // namespace megamoe::cpu
