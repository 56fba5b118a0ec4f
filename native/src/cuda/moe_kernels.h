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

}  // namespace megamoe::cuda
