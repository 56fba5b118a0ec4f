// Host entry of the SM90 block-scaled GEMMs: one launch described by GemmArgs, dispatched to the
// variant heuristics.h picks (dispatch.cu). A and D are seen as 2D [rows, K] / [rows, N] row-major
// views, B as [groups * N, K].
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/cuda_utils.h"
#include "cuda/sm90/gemm/heuristics.h"
#include "cuda/sm90/gemm/params.h"
#include "cuda/sm90/gemm/smem_budget.h"

namespace megamoe::cuda::sm90 {

struct GemmArgs {
  GemmKind kind = GemmKind::Dense;
  GemmEpilogue epilogue = GemmEpilogue::Bf16;
  const void* b = nullptr;          // FP8 [groups, N, K] (loaded by TMA)
  int64_t expected_m = 0;           // masked: typical rows per group (0 = unknown), steers the choice only
  bool expert_specialization = false;  // routed: 64-row tiles for experts with at most 64 slots
  // What the kernel reads. Routed layouts: layout.rows = the most slots a batch can hold (T * top_k),
  // layout.groups_data = the routing offsets [groups + 2] and routed.row_slot = the grouped order,
  // both written by the routing kernel.
  KernelParams params;
};

// The variant that runs `args` on this device and its split-K (variant -1 if none fits).
GemmChoice choose_variant(const GemmArgs& args, const DeviceLimits& limits);
// Enqueues the GEMM; rows == 0 or n == 0 enqueue nothing.
void gemm(const GemmArgs& args, const DeviceLimits& limits, cudaStream_t stream);

}  // namespace megamoe::cuda::sm90
