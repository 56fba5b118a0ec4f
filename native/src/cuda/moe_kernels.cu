// The MoE layer's first launch (docs/NUMERICS.md section 4, step 1 and the routing): every block
// but the last quantizes tokens (1x128, no UE8M0), clears the combine counters, records which of
// each token's slots are routed (the combine's mask) and writes the zero output of tokens whose
// slots are all dropped; the last block builds the routing metadata.
// The two GEMM launches that follow are in gemm_moe_up.cu and gemm_moe_down.cu.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <atomic>

#include <algorithm>
#include <cstdint>

#include "cuda/cuda_utils.h"
#include "cuda/moe_kernels.h"
#include "cuda/quant_device.cuh"
#include "cuda/routing.cuh"

namespace megamoe::cuda {
namespace {

__global__ void __launch_bounds__(kRoutingThreads, 1) moe_prepare_kernel(const MoePrepareArgs a) {
  extern __shared__ int32_t smem[];
  if (blockIdx.x == gridDim.x - 1) {
    build_routing(a.routing, smem);
    return;
  }
  const uint32_t tokens = batch_tokens(a.routing.num_tokens, a.routing.tokens);
  const uint32_t workers = (gridDim.x - 1) * kRoutingThreads;
  const uint32_t lane = threadIdx.x % 32;

  // Quantize: one lane per 16 elements, whole warps per step (quantize_act_chunk16 shuffles).
  if (a.x != nullptr) {
    const uint32_t groups = a.hidden / 128;
    const uint64_t per_row = uint64_t{groups} * 8;
    const uint64_t total = uint64_t{tokens} * per_row;
    for (uint64_t base = uint64_t{blockIdx.x} * kRoutingThreads + (threadIdx.x - lane); base < total; base += workers) {
      const uint64_t i = base + lane;
      const uint64_t row = i / per_row;
      quantize_act_chunk16(a.x, a.qx, a.sx, row, static_cast<uint32_t>(i - row * per_row), i < total, a.hidden, groups,
                           false);
    }
  }

  // Per token, one warp: counters to zero, the routed-slot mask; y to +0.0 where every slot is
  // dropped (no tile writes it).
  const uint32_t warp = (blockIdx.x * kRoutingThreads + threadIdx.x) / 32;
  for (uint32_t t = warp; t < tokens; t += workers / 32) {
    for (uint32_t c = lane; c < a.counter_cols; c += 32) a.counters[uint64_t{t} * a.counter_cols + c] = 0;
    bool routed = false;
    if (lane < a.routing.top_k) {
      routed = routing_bucket_at(a.routing, uint64_t{t} * a.routing.top_k + lane) <
               static_cast<int32_t>(a.routing.num_experts);
    }
    const uint32_t mask = __ballot_sync(0xFFFFFFFFu, routed);
    if (lane == 0) a.token_masks[t] = mask;
    if (mask != 0) continue;
    const uint64_t row_bytes = uint64_t{a.hidden} * a.y_elem_bytes;
    uint4* row = reinterpret_cast<uint4*>(static_cast<uint8_t*>(a.y) + t * row_bytes);
    for (uint64_t c = lane; c < row_bytes / 16; c += 32) row[c] = make_uint4(0, 0, 0, 0);
  }
}

}  // namespace

void launch_moe_prepare(const MoePrepareArgs& args, int device, int num_sms, cudaStream_t stream) {
  const size_t smem = routing_smem_bytes(args.routing.num_experts);
  static std::atomic<uint64_t> attribute_set{0};
  once_per_device(attribute_set, device, [] {
    check(cudaFuncSetAttribute(moe_prepare_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(routing_smem_bytes(kMaxExperts))),
          "cudaFuncSetAttribute(moe_prepare_kernel)");
  });
  // Enough blocks to stream x at full bandwidth (16 elements a lane), at most two waves.
  const uint64_t lanes = uint64_t{args.routing.tokens} * (args.hidden / 16);
  const uint64_t wanted = (lanes + kRoutingThreads - 1) / kRoutingThreads;
  const unsigned workers = static_cast<unsigned>(std::clamp<uint64_t>(wanted, 1, uint64_t(2) * num_sms));
  moe_prepare_kernel<<<workers + 1, kRoutingThreads, smem, stream>>>(args);
  check_launch("moe_prepare_kernel");
}

}  // namespace megamoe::cuda
