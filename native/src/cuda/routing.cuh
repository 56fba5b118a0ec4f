// Routing metadata on the device: the slots s = t * top_k + j of a batch grouped by expert, in the
// stable order of core/routing.h group_slots_by_expert, built by one thread block with no host
// synchronization (the token count may itself live on the device), so the whole routed path can be
// captured in a CUDA graph and replayed with other routings and token counts.
//
// Output: offsets [E + 2] (expert e owns grouped rows [offsets[e], offsets[e + 1]), the dropped
// slots follow as [offsets[E], offsets[E + 1]), offsets[E + 1] = T * top_k) and order [T * top_k]
// (grouped row -> slot). Optionally expert_counts[e] += slots routed to e.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/routing.h"

namespace megamoe::cuda {

constexpr uint32_t kRoutingThreads = 1024;
constexpr uint32_t kRoutingWarps = kRoutingThreads / 32;
// The most experts a routing may have (the C ABI's limit).
constexpr uint32_t kRoutingMaxExperts = 1024;

struct RoutingArgs {
  const void* topk_idx = nullptr;  // [T, top_k] INT32 or INT64
  bool topk_int64 = false;
  uint32_t tokens = 0;              // T of the tensors (upper bound of the device count)
  const int32_t* num_tokens = nullptr;  // device count, or null
  uint32_t top_k = 0;
  uint32_t num_experts = 0;
  int32_t* offsets = nullptr;       // [E + 2]
  int32_t* order = nullptr;         // [T * top_k]
  int32_t* expert_counts = nullptr; // [E] or null
};

// Dynamic shared memory of build_routing: a slot counter per (warp, bucket) and the bucket totals.
constexpr size_t routing_smem_bytes(uint32_t num_experts) {
  return (static_cast<size_t>(kRoutingWarps) + 1) * (num_experts + 1) * sizeof(int32_t);
}

// The batch's token count: the device count when given, clamped to [0, T].
__device__ __forceinline__ uint32_t batch_tokens(const int32_t* num_tokens, uint32_t tokens) {
  if (num_tokens == nullptr) return tokens;
  const int32_t n = *num_tokens;
  return n < 0 ? 0u : (static_cast<uint32_t>(n) < tokens ? static_cast<uint32_t>(n) : tokens);
}

__device__ __forceinline__ int32_t routing_bucket_at(const RoutingArgs& a, uint64_t s) {
  const int64_t v = a.topk_int64 ? static_cast<const int64_t*>(a.topk_idx)[s]
                                 : static_cast<int64_t>(static_cast<const int32_t*>(a.topk_idx)[s]);
  return routing_bucket(v, static_cast<int32_t>(a.num_experts));
}

// Run by all kRoutingThreads threads of one block; smem holds routing_smem_bytes(E).
// Worker warp w counts, then places, the slots of its contiguous range (routing_worker_range):
// ranks inside a 32-slot batch come from __match_any_sync, so within a bucket slots keep their
// order, which makes the result equal to the sequential counting sort.
__device__ inline void build_routing(const RoutingArgs& a, int32_t* smem) {
  const uint32_t tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const uint32_t buckets = a.num_experts + 1;
  int32_t* cursor = smem;                           // [kRoutingWarps][buckets]
  int32_t* total = smem + kRoutingWarps * buckets;  // [buckets]
  const int64_t slots = static_cast<int64_t>(batch_tokens(a.num_tokens, a.tokens)) * a.top_k;
  const SlotRange range = routing_worker_range(slots, kRoutingWarps, warp);

  for (uint32_t i = tid; i < kRoutingWarps * buckets; i += kRoutingThreads) cursor[i] = 0;
  __syncthreads();

  // 1. Count per (warp, bucket).
  for (int64_t base = range.begin; base < range.end; base += 32) {
    const int64_t s = base + lane;
    const int32_t b = s < range.end ? routing_bucket_at(a, static_cast<uint64_t>(s)) : -1;
    const uint32_t peers = __match_any_sync(0xFFFFFFFFu, b);
    if (b >= 0 && lane == static_cast<uint32_t>(__ffs(peers) - 1)) cursor[warp * buckets + b] += __popc(peers);
    __syncwarp();
  }
  __syncthreads();

  // 2. Per bucket: warp prefix counts and the total.
  for (uint32_t b = tid; b < buckets; b += kRoutingThreads) {
    int32_t run = 0;
    for (uint32_t w = 0; w < kRoutingWarps; ++w) {
      const int32_t c = cursor[w * buckets + b];
      cursor[w * buckets + b] = run;
      run += c;
    }
    total[b] = run;
  }
  __syncthreads();

  // 3. Exclusive scan of the totals by warp 0 (each lane a contiguous run of buckets).
  if (warp == 0) {
    const uint32_t per_lane = (buckets + 31) / 32;
    const uint32_t first = lane * per_lane;
    int32_t sum = 0;
    for (uint32_t i = 0; i < per_lane; ++i) {
      if (first + i < buckets) sum += total[first + i];
    }
    int32_t prefix = sum;
#pragma unroll
    for (uint32_t o = 1; o < 32; o *= 2) {
      const int32_t v = __shfl_up_sync(0xFFFFFFFFu, prefix, o);
      if (lane >= o) prefix += v;
    }
    int32_t run = prefix - sum;
    for (uint32_t i = 0; i < per_lane; ++i) {
      if (first + i >= buckets) break;
      const int32_t c = total[first + i];
      total[first + i] = run;  // now the bucket's first row
      if (a.expert_counts != nullptr && first + i < a.num_experts) a.expert_counts[first + i] += c;
      run += c;
    }
  }
  __syncthreads();
  for (uint32_t b = tid; b < buckets; b += kRoutingThreads) a.offsets[b] = total[b];
  if (tid == 0) a.offsets[buckets] = static_cast<int32_t>(slots);
  for (uint32_t i = tid; i < kRoutingWarps * buckets; i += kRoutingThreads) cursor[i] += total[i % buckets];
  __syncthreads();

  // 4. Place the slots.
  for (int64_t base = range.begin; base < range.end; base += 32) {
    const int64_t s = base + lane;
    const int32_t b = s < range.end ? routing_bucket_at(a, static_cast<uint64_t>(s)) : -1;
    const uint32_t peers = __match_any_sync(0xFFFFFFFFu, b);
    if (b >= 0) {
      const int32_t rank = __popc(peers & ((1u << lane) - 1u));
      a.order[cursor[warp * buckets + b] + rank] = static_cast<int32_t>(s);
    }
    __syncwarp();
    if (b >= 0 && lane == static_cast<uint32_t>(__ffs(peers) - 1)) cursor[warp * buckets + b] += __popc(peers);
    __syncwarp();
  }
}

// One-block launch of build_routing (the routed GEMM's first launch).
void launch_routing(const RoutingArgs& args, int device, cudaStream_t stream);

}  // namespace megamoe::cuda
