// Host entry points of the memory-bound transform kernels (quant_kernels.cu). Tensors are validated
// by the C ABI layer: dense row-major, 16-byte aligned, on this backend's device.
#pragma once

#include <cuda_runtime.h>

#include "core/backend.h"

namespace megamoe::cuda {

// docs/NUMERICS.md section 2. x [M, K] BF16/FP32 -> q [M, K] FP8, scales [M, ceil(K/128)].
// nonfinite_rows: NULL, or a device INT32 incremented by the rows of x holding a NaN or an infinity.
void quantize_activations(const Tensor& x, const ScaledTensor& out, bool ue8m0, int32_t* nonfinite_rows,
                          cudaStream_t stream);
void dequantize_activations(const ScaledTensor& q, const Tensor& out, cudaStream_t stream);
// w [E?, N, K] BF16/FP32 -> q FP8, scales [E?, ceil(N/128), ceil(K/128)].
void quantize_weights(const Tensor& w, const ScaledTensor& out, bool ue8m0, cudaStream_t stream);
void dequantize_weights(const ScaledTensor& q, const Tensor& out, cudaStream_t stream);
// Gate/up 8-row interleave of w13 [E?, 2I, H] (any dtype) and its inverse.
void interleave_gate_up(const Tensor& w, const Tensor& out, bool inverse, cudaStream_t stream);

}  // namespace megamoe::cuda
