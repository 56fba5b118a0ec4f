// Host entry points of the CUDA kernels (memory-bound transforms and the SM90 GEMMs). Tensors are
// validated by the C ABI layer: dense row-major, 16-byte aligned, on this backend's device.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/backend.h"
#include "core/gemm_heuristics.h"
#include "cuda/gemm_params.h"

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

// One block-scaled GEMM launch. A and D are seen as 2D [rows, K] / [rows, N] row-major views;
// B as [groups * N, K].
struct GemmArgs {
  GemmKind kind = GemmKind::Dense;
  const void* a = nullptr;      // FP8 [rows, K]
  const float* sfa = nullptr;   // [rows, K/128]
  const void* b = nullptr;      // FP8 [groups, N, K]
  const float* sfb = nullptr;   // [groups, N/128, K/128]
  const void* layout = nullptr;  // m_indices INT32 [rows] | masked_m INT32 [groups] | offsets [groups + 1]
  bool layout_int64 = false;     // offsets given as INT64
  void* d = nullptr;            // BF16 [rows, N]
  uint32_t rows = 0;            // rows of the 2D views (masked: groups * max_m)
  uint32_t max_m = 0;           // masked: rows per group
  uint32_t n = 0;
  uint32_t k = 0;
  uint32_t groups = 1;
  int64_t expected_m = 0;       // masked: typical rows per group (0 = unknown)

  // Routed layouts (kind Routed): rows = the most slots a batch can hold (T * top_k), layout = the
  // routing offsets [groups + 2] and row_slot = the grouped order, both from the routing kernel.
  GemmEpilogue epilogue = GemmEpilogue::Bf16;
  const int32_t* row_slot = nullptr;
  uint32_t top_k = 1;
  bool expert_specialization = false;
  bool dropped_segment = false;
  const float* slot_weights = nullptr;
  // SwigluFp8
  uint8_t* act = nullptr;
  float* act_scales = nullptr;
  uint32_t act_cols = 0;
  float weight_scale = 1.0f;
  float alpha = 1.0f;
  float beta = 0.0f;
  float clamp = 0.0f;
  // CombineF32
  float* z = nullptr;
  int32_t* counters = nullptr;
  const uint32_t* token_masks = nullptr;
  void* y = nullptr;
};

struct DeviceLimits {
  int device = 0;
  int num_sms = 132;
};

// The tile configuration the heuristics pick for `args` (exposed for tests and benchmarks).
// Routed layouts run 128-row tiles without multicast, BLOCK_N 256 or 128.
GemmTile choose_tile(const GemmArgs& args, const DeviceLimits& limits);
void gemm(const GemmArgs& args, const DeviceLimits& limits, cudaStream_t stream);

}  // namespace megamoe::cuda
