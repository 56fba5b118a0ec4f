// Host entry of the MoE layer's first launch (moe_kernels.cu).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/routing.cuh"

namespace megamoe::cuda {

struct MoePrepareArgs {
  RoutingArgs routing;                 // tokens = T of the tensors; num_tokens may cap it on the device
  const __nv_bfloat16* x = nullptr;    // [T, H] BF16, or null when x comes quantized
  uint8_t* qx = nullptr;               // [T, H] FP8
  float* sx = nullptr;                 // [T, H/128]
  uint32_t hidden = 0;
  int32_t* counters = nullptr;         // [T, counter_cols]
  uint32_t counter_cols = 0;
  uint32_t* token_masks = nullptr;     // [T] bit j: slot j routed to an expert
  void* y = nullptr;                   // [T, H] BF16, or FP32 (y_elem_bytes 4)
  uint32_t y_elem_bytes = 2;
};

void launch_moe_prepare(const MoePrepareArgs& args, int device, int num_sms, cudaStream_t stream);

// The routed slots' FP8 rows and their scales copied into grouped order, for an up-projection that
// loads A by TMA (cuda/sm90/gemm/heuristics.h moe_up_rows_grouped).
struct MoeGroupRowsArgs {
  const int32_t* offsets = nullptr;  // routing table (routing.cuh): grouped rows [0, offsets[E]) are routed
  const int32_t* order = nullptr;    // grouped row -> slot
  uint32_t num_experts = 0;
  uint32_t top_k = 0;
  uint32_t max_rows = 0;             // T * top_k of the tensors (the routed rows are at most that many)
  const uint8_t* x = nullptr;        // [T, H] FP8, 16-byte aligned rows
  const float* sx = nullptr;         // [T, H/128]
  uint8_t* rows = nullptr;           // [T * top_k, H] FP8, grouped order
  float* row_scales = nullptr;       // [T * top_k, H/128]
  uint32_t hidden = 0;
};

void launch_moe_group_rows(const MoeGroupRowsArgs& args, int num_sms, cudaStream_t stream);

}  // namespace megamoe::cuda
