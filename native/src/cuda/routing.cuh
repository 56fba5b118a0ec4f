// Routing metadata on the device: the slots s = t * top_k + j of a batch grouped by expert, in the
// stable order of core/routing.h group_slots_by_expert, built by one thread block with no host
// synchronization (the token count may itself live on the device), so the whole routed path can be
// captured in a CUDA graph and replayed with other routings and token counts.
//
// Output: offsets [E + 2] (expert e owns grouped rows [offsets[e], offsets[e + 1]), the dropped
// slots follow as [offsets[E], offsets[E + 1]), offsets[E + 1] = T * top_k), right after them the
// non-empty segments [E + 2] (their count, then their indices in order: the experts with slots, and E
// when slots were dropped), and order [T * top_k] (grouped row -> slot). Optionally expert_counts[e]
// += slots routed to e. The GEMM schedulers walk the non-empty segments only, so a decode batch costs
// the same over 256 experts as over 32 (bench/NOTES.md, run 39).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/limits.h"
#include "core/routing.h"

namespace megamoe::cuda {

constexpr uint32_t kRoutingThreads = 1024;
constexpr uint32_t kRoutingWarps = kRoutingThreads / 32;

struct RoutingArgs {
  const void* topk_idx = nullptr;  // [T, top_k] INT32 or INT64
  bool topk_int64 = false;
  uint32_t tokens = 0;              // T of the tensors (upper bound of the device count)
  const int32_t* num_tokens = nullptr;  // device count, or null
  uint32_t top_k = 0;
  uint32_t num_experts = 0;
  int32_t* offsets = nullptr;       // [routing_table_ints(E)]: offsets [E + 2], non-empty segments [E + 2]
  int32_t* order = nullptr;         // [T * top_k]
  int32_t* expert_counts = nullptr; // [E] or null
};

// Ints of the routing table the routing block writes (offsets and non-empty segments).
constexpr int64_t routing_table_ints(int64_t num_experts) { return 2 * (num_experts + 2); }

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

// The stable counting sort of `slots` items into `buckets` buckets by one block of kRoutingThreads
// threads (smem: routing_smem_bytes(buckets - 1)). bucket_at(s) gives item s's bucket in
// [0, buckets). Then on_bucket(b, begin, count) runs once per bucket, and place(s, b, row, begin)
// once per item, where row = begin + (the items of bucket b before s): rows follow bucket order, and
// within a bucket item order. Worker warp w counts, then places, the items of its contiguous range
// (routing_worker_range): ranks inside a 32-item batch come from __match_any_sync, so the result
// equals the sequential counting sort whatever the number of workers.
template <typename BucketAt, typename OnBucket, typename Place>
__device__ inline void group_slots_device(int64_t slots, uint32_t buckets, BucketAt&& bucket_at, OnBucket&& on_bucket,
                                          Place&& place, int32_t* smem) {
  const uint32_t tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  int32_t* cursor = smem;                           // [kRoutingWarps][buckets]
  int32_t* total = smem + kRoutingWarps * buckets;  // [buckets]
  const SlotRange range = routing_worker_range(slots, kRoutingWarps, warp);

  for (uint32_t i = tid; i < kRoutingWarps * buckets; i += kRoutingThreads) cursor[i] = 0;
  __syncthreads();

  // 1. Count per (warp, bucket).
  for (int64_t base = range.begin; base < range.end; base += 32) {
    const int64_t s = base + lane;
    const int32_t b = s < range.end ? bucket_at(static_cast<uint64_t>(s)) : -1;
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

  // 3. Exclusive scan of the totals by warp 0 (each lane a contiguous run of buckets): total[b]
  //    becomes the bucket's first row.
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
      total[first + i] = run;
      run += c;
    }
  }
  __syncthreads();
  for (uint32_t b = tid; b < buckets; b += kRoutingThreads) {
    const int32_t end = b + 1 < buckets ? total[b + 1] : static_cast<int32_t>(slots);
    on_bucket(b, total[b], end - total[b]);
  }
  for (uint32_t i = tid; i < kRoutingWarps * buckets; i += kRoutingThreads) cursor[i] += total[i % buckets];
  __syncthreads();

  // 4. Place the items.
  for (int64_t base = range.begin; base < range.end; base += 32) {
    const int64_t s = base + lane;
    const int32_t b = s < range.end ? bucket_at(static_cast<uint64_t>(s)) : -1;
    const uint32_t peers = __match_any_sync(0xFFFFFFFFu, b);
    if (b >= 0) {
      const int32_t rank = __popc(peers & ((1u << lane) - 1u));
      place(s, b, cursor[warp * buckets + b] + rank, total[b]);
    }
    __syncwarp();
    if (b >= 0 && lane == static_cast<uint32_t>(__ffs(peers) - 1)) cursor[warp * buckets + b] += __popc(peers);
    __syncwarp();
  }
}

// The routing metadata of the header comment. Run by all kRoutingThreads threads of one block; smem
// holds routing_smem_bytes(E).
__device__ inline void build_routing(const RoutingArgs& a, int32_t* smem) {
  const int64_t slots = static_cast<int64_t>(batch_tokens(a.num_tokens, a.tokens)) * a.top_k;
  const uint32_t experts = a.num_experts;
  group_slots_device(
      slots, experts + 1, [&](uint64_t s) { return routing_bucket_at(a, s); },
      [&](uint32_t b, int32_t begin, int32_t count) {
        a.offsets[b] = begin;
        if (a.expert_counts != nullptr && b < experts) a.expert_counts[b] += count;
      },
      [&](int64_t s, int32_t /*bucket*/, int32_t row, int32_t /*begin*/) { a.order[row] = static_cast<int32_t>(s); },
      smem);
  if (threadIdx.x == 0) a.offsets[experts + 1] = static_cast<int32_t>(slots);
  __syncthreads();
  // The non-empty segments, in order, by warp 0 (a ballot per 32 segments).
  if (threadIdx.x < 32) {
    const uint32_t lane = threadIdx.x;
    int32_t* active = a.offsets + experts + 2;
    int32_t count = 0;
    for (uint32_t base = 0; base <= experts; base += 32) {
      const uint32_t b = base + lane;
      const bool used = b <= experts && a.offsets[b + 1] > a.offsets[b];
      const uint32_t ballot = __ballot_sync(0xFFFFFFFFu, used);
      if (used) active[1 + count + __popc(ballot & ((1u << lane) - 1u))] = static_cast<int32_t>(b);
      count += __popc(ballot);
    }
    if (lane == 0) active[0] = count;
  }
}

// One-block launch of build_routing (the routed GEMM's first launch).
void launch_routing(const RoutingArgs& args, int device, cudaStream_t stream);

}  // namespace megamoe::cuda
