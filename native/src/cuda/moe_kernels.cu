// The MoE layer's first launch (docs/NUMERICS.md section 4, step 1 and the routing): every block
// but the last quantizes tokens (1x128, no UE8M0), clears the combine counters, records which of
// each token's slots are routed (the combine's mask) and writes the zero output of tokens whose
// slots are all dropped; the last block builds the routing metadata. At large batches a second
// launch copies the routed rows into grouped order (moe_group_rows_kernel). The GEMM launches that
// follow are set up in moe_layer.cu.
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

// One warp per grouped row: the slot's token row, 16 bytes a lane, and its H/128 scales.
__global__ void __launch_bounds__(256) moe_group_rows_kernel(const MoeGroupRowsArgs a) {
  const uint32_t routed = static_cast<uint32_t>(a.offsets[a.num_experts]);
  const uint32_t lane = threadIdx.x % 32;
  const uint32_t warps = gridDim.x * blockDim.x / 32;
  const uint32_t chunks = a.hidden / 16, groups = a.hidden / 128;
  for (uint32_t r = (blockIdx.x * blockDim.x + threadIdx.x) / 32; r < routed; r += warps) {
    const uint64_t token = static_cast<uint32_t>(__ldg(a.order + r)) / a.top_k;
    const uint4* src = reinterpret_cast<const uint4*>(a.x + token * a.hidden);
    uint4* dst = reinterpret_cast<uint4*>(a.rows + uint64_t{r} * a.hidden);
    for (uint32_t c = lane; c < chunks; c += 32) dst[c] = __ldg(src + c);
    for (uint32_t g = lane; g < groups; g += 32) a.row_scales[uint64_t{r} * groups + g] = __ldg(a.sx + token * groups + g);
  }
}

}  // namespace

void launch_moe_group_rows(const MoeGroupRowsArgs& args, int num_sms, cudaStream_t stream) {
  // Eight rows per block of 256 threads, at most four blocks per SM (each warp then loops).
  const uint64_t wanted = (uint64_t{args.max_rows} + 7) / 8;
  const unsigned blocks = static_cast<unsigned>(std::clamp<uint64_t>(wanted, 1, uint64_t(4) * num_sms));
  moe_group_rows_kernel<<<blocks, 256, 0, stream>>>(args);
  check_launch("moe_group_rows_kernel");
}

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
