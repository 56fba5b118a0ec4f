// The CUDA backend's expert-parallel primitives (core/backend.h, docs/EP.md): pack, unpack (plain and
// expanded), return and combine over the fixed-size regions of core/ep_format.h. They compute what
// cpu/ep_kernels.cpp computes, without a host synchronization: counts live in the region headers and
// in device memory only, so a forward can be captured in a CUDA graph. Stable orders (records in
// token order, expanded rows by expert) come from the one-block counting sort of routing.cuh.
//
// Differences from the CPU backend, where the device cannot refuse a call: an expert id outside
// [-1, E) is a dropped slot (as in the single-GPU layer, docs/NUMERICS.md); a region header that
// claims more records than a region holds is clamped, and a received local expert outside
// [0, E_local) is a dropped slot (the CPU reports both as internal errors: only a corrupt peer
// region holds them); tokens whose rows a failed peer did not compute are written as NaN (the
// peer's own call reports why).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "core/backend.h"
#include "core/ep_format.h"
#include "cuda/cuda_utils.h"
#include "cuda/ep_kernels.h"
#include "cuda/routing.cuh"

namespace megamoe::cuda {
namespace {

constexpr uint32_t kCopyThreads = 256;

__device__ __forceinline__ EpRegionHeader* header_at(uint8_t* regions, int64_t region_bytes, int64_t p) {
  return reinterpret_cast<EpRegionHeader*>(regions + p * region_bytes);
}
__device__ __forceinline__ const EpRegionHeader* header_at(const uint8_t* regions, int64_t region_bytes, int64_t p) {
  return reinterpret_cast<const EpRegionHeader*>(regions + p * region_bytes);
}
__device__ __forceinline__ int64_t expert_at(const void* topk_idx, bool int64, uint64_t s) {
  return int64 ? static_cast<const int64_t*>(topk_idx)[s] : static_cast<int64_t>(static_cast<const int32_t*>(topk_idx)[s]);
}

// The source rank of received row i: the last s with offsets[s] <= i (offsets [W + 1], non-decreasing).
__device__ __forceinline__ int32_t source_of(const int32_t* offsets, int32_t world_size, int64_t i) {
  int32_t lo = 0, hi = world_size - 1;
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) / 2;
    if (offsets[mid] <= i) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// Copies `bytes` (a multiple of 16, both ends 16-byte aligned) with the lanes of one warp.
__device__ __forceinline__ void warp_copy16(void* dst, const void* src, int64_t bytes, uint32_t lane) {
  auto* d = static_cast<uint4*>(dst);
  const auto* s = static_cast<const uint4*>(src);
  for (int64_t c = lane; c < bytes / 16; c += 32) d[c] = s[c];
}
// Copies `count` 4-byte words with the lanes of one warp.
__device__ __forceinline__ void warp_copy4(void* dst, const void* src, int64_t count, uint32_t lane) {
  auto* d = static_cast<uint32_t*>(dst);
  const auto* s = static_cast<const uint32_t*>(src);
  for (int64_t c = lane; c < count; c += 32) d[c] = s[c];
}

// ---------------------------------------------------------------------------------------------
// Pack
// ---------------------------------------------------------------------------------------------
struct PackParams {
  EpGeometry g;
  const int32_t* rank_begin;  // [W + 1]
  const uint8_t* x;           // [T, H] FP8
  const float* scales;        // [T, H/128]
  const void* topk_idx;       // [T, k]
  bool topk_int64;
  const float* weights;       // [T, k]
  uint32_t tokens;
  uint8_t* send;
  int32_t* pos;               // [T, W]
};

// The rank a slot's record goes to, or W when the slot is dropped, names an expert outside [0, E),
// or is not the first slot of its token on that rank (a token is sent to a rank once).
__device__ __forceinline__ int32_t slot_destination(const PackParams& a, const int32_t* rank_begin, uint64_t s) {
  const int32_t w = a.g.world_size;
  const int32_t experts = rank_begin[w];
  const int64_t e = expert_at(a.topk_idx, a.topk_int64, s);
  if (e < 0 || e >= experts) return w;
  const int32_t p = ep_owner(rank_begin, w, e);
  const uint64_t first = s - s % static_cast<uint64_t>(a.g.top_k);
  for (uint64_t q = first; q < s; ++q) {
    const int64_t f = expert_at(a.topk_idx, a.topk_int64, q);
    if (f >= 0 && f < experts && ep_owner(rank_begin, w, f) == p) return w;
  }
  return p;
}

// One block: the record index of every (token, rank) in token order (pos) and the region headers.
__global__ void __launch_bounds__(kRoutingThreads, 1) ep_pack_index_kernel(const PackParams a) {
  extern __shared__ int32_t smem[];
  const int32_t w = a.g.world_size;
  int32_t* rank_begin = smem + routing_smem_bytes(static_cast<uint32_t>(w)) / sizeof(int32_t);
  for (int32_t i = threadIdx.x; i <= w; i += kRoutingThreads) rank_begin[i] = a.rank_begin[i];
  __syncthreads();
  const int64_t slots = static_cast<int64_t>(a.tokens) * a.g.top_k;
  group_slots_device(
      slots, static_cast<uint32_t>(w) + 1, [&](uint64_t s) { return slot_destination(a, rank_begin, s); },
      [&](uint32_t b, int32_t /*begin*/, int32_t count) {
        if (b < static_cast<uint32_t>(w)) *header_at(a.send, a.g.region_bytes(), b) = EpRegionHeader{count, 0, {0, 0}};
      },
      [&](int64_t s, int32_t b, int32_t row, int32_t begin) {
        if (b < w) a.pos[(s / a.g.top_k) * w + b] = row - begin;
      },
      smem);
}

// One warp per slot that starts a record: the token's FP8 row, scales, local indices and weights.
__global__ void __launch_bounds__(kCopyThreads) ep_pack_copy_kernel(const PackParams a) {
  const uint32_t lane = threadIdx.x % 32;
  const uint64_t warps = uint64_t{gridDim.x} * (kCopyThreads / 32);
  const uint64_t slots = uint64_t{a.tokens} * a.g.top_k;
  const int32_t w = a.g.world_size, k = a.g.top_k;
  for (uint64_t s = (uint64_t{blockIdx.x} * kCopyThreads + threadIdx.x) / 32; s < slots; s += warps) {
    const int32_t p = slot_destination(a, a.rank_begin, s);
    if (p == w) continue;
    const uint64_t t = s / k;
    const int32_t i = a.pos[t * w + p];
    uint8_t* rec = a.send + p * a.g.region_bytes() + kEpHeaderBytes + i * a.g.record_bytes();
    warp_copy16(rec, a.x + t * a.g.hidden, a.g.hidden, lane);
    warp_copy4(rec + a.g.scales_offset(), a.scales + t * a.g.scale_count(), a.g.scale_count(), lane);
    const int32_t first = a.rank_begin[p], last = a.rank_begin[p + 1];
    if (lane < static_cast<uint32_t>(k)) {
      const int64_t e = expert_at(a.topk_idx, a.topk_int64, t * k + lane);
      reinterpret_cast<int32_t*>(rec + a.g.index_offset())[lane] = e >= first && e < last ? static_cast<int32_t>(e - first) : -1;
      reinterpret_cast<float*>(rec + a.g.weights_offset())[lane] = a.weights[t * k + lane];
    }
    // Padding too: regions are compared bytewise in the tests, and nothing stale leaves the rank.
    const int64_t used = a.g.weights_offset() + 4 * int64_t{k};
    for (int64_t b = used / 4 + lane; b < a.g.record_bytes() / 4; b += 32) reinterpret_cast<uint32_t*>(rec)[b] = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Unpack
// ---------------------------------------------------------------------------------------------
// One block: source offsets [W + 1] from the received headers (counts clamped to [0, C]) and R.
__global__ void __launch_bounds__(1024) ep_source_offsets_kernel(EpGeometry g, const uint8_t* recv, int32_t* offsets,
                                                                 int32_t* num_tokens) {
  __shared__ int32_t warp_sums[32];
  __shared__ int32_t carry;
  if (threadIdx.x == 0) carry = 0;
  __syncthreads();
  const uint32_t lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int32_t base = 0; base < g.world_size; base += 1024) {
    const int32_t s = base + static_cast<int32_t>(threadIdx.x);
    int32_t count = 0;
    if (s < g.world_size) {
      const int64_t c = header_at(recv, g.region_bytes(), s)->count;
      count = static_cast<int32_t>(c < 0 ? 0 : (c > g.capacity ? g.capacity : c));
    }
    int32_t prefix = count;
#pragma unroll
    for (uint32_t o = 1; o < 32; o *= 2) {
      const int32_t v = __shfl_up_sync(0xFFFFFFFFu, prefix, o);
      if (lane >= o) prefix += v;
    }
    if (lane == 31) warp_sums[warp] = prefix;
    __syncthreads();
    if (warp == 0) {
      int32_t ws = warp_sums[lane];
#pragma unroll
      for (uint32_t o = 1; o < 32; o *= 2) {
        const int32_t v = __shfl_up_sync(0xFFFFFFFFu, ws, o);
        if (lane >= o) ws += v;
      }
      warp_sums[lane] = ws;  // inclusive
    }
    __syncthreads();
    const int32_t before = carry + (warp > 0 ? warp_sums[warp - 1] : 0) + prefix - count;
    if (s < g.world_size) offsets[s] = before;
    __syncthreads();
    if (threadIdx.x == 0) carry += warp_sums[31];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    offsets[g.world_size] = carry;
    if (num_tokens != nullptr) *num_tokens = carry;
  }
}

__device__ __forceinline__ const uint8_t* received_record(const EpGeometry& g, const uint8_t* recv, const int32_t* offsets,
                                                          int64_t i) {
  const int32_t s = source_of(offsets, g.world_size, i);
  return recv + s * g.region_bytes() + kEpHeaderBytes + (i - offsets[s]) * g.record_bytes();
}

struct UnpackParams {
  EpGeometry g;
  const uint8_t* recv;
  const int32_t* offsets;  // [W + 1]
  uint8_t* x;
  float* scales;
  int32_t* topk_idx;
  float* weights;
};

// One warp per received row.
__global__ void __launch_bounds__(kCopyThreads) ep_unpack_kernel(const UnpackParams a) {
  const uint32_t lane = threadIdx.x % 32;
  const int64_t warps = int64_t{gridDim.x} * (kCopyThreads / 32);
  const int64_t rows = a.offsets[a.g.world_size], k = a.g.top_k;
  for (int64_t i = (int64_t{blockIdx.x} * kCopyThreads + threadIdx.x) / 32; i < rows; i += warps) {
    const uint8_t* rec = received_record(a.g, a.recv, a.offsets, i);
    warp_copy16(a.x + i * a.g.hidden, rec, a.g.hidden, lane);
    warp_copy4(a.scales + i * a.g.scale_count(), rec + a.g.scales_offset(), a.g.scale_count(), lane);
    warp_copy4(a.topk_idx + i * k, rec + a.g.index_offset(), k, lane);
    warp_copy4(a.weights + i * k, rec + a.g.weights_offset(), k, lane);
  }
}

struct ExpandParams {
  EpGeometry g;
  int32_t experts;  // local
  const uint8_t* recv;
  const int32_t* offsets;  // [W + 1]
  int32_t* expert_offsets;  // [E_local + 1]
  int32_t* slot_rows;       // [R_max, k]
  float* weights;           // [R_max, k]
  uint8_t* x;
  float* scales;
};

__device__ __forceinline__ int32_t received_local_expert(const ExpandParams& a, uint64_t s) {
  const int64_t k = a.g.top_k;
  const uint8_t* rec = received_record(a.g, a.recv, a.offsets, static_cast<int64_t>(s) / k);
  const int32_t e = reinterpret_cast<const int32_t*>(rec + a.g.index_offset())[s % k];
  return e >= 0 && e < a.experts ? e : a.experts;
}

// One block: the expanded rows' order by local expert, stable in (source rank, token, slot).
__global__ void __launch_bounds__(kRoutingThreads, 1) ep_expand_index_kernel(const ExpandParams a) {
  extern __shared__ int32_t smem[];
  const int64_t slots = int64_t{a.offsets[a.g.world_size]} * a.g.top_k;
  group_slots_device(
      slots, static_cast<uint32_t>(a.experts) + 1, [&](uint64_t s) { return received_local_expert(a, s); },
      [&](uint32_t b, int32_t begin, int32_t /*count*/) { a.expert_offsets[b] = begin; },
      [&](int64_t s, int32_t b, int32_t row, int32_t /*begin*/) { a.slot_rows[s] = b < a.experts ? row : -1; },
      smem);
}

// One warp per received slot: its weight, and the record's row into the slot's expanded row.
__global__ void __launch_bounds__(kCopyThreads) ep_expand_copy_kernel(const ExpandParams a) {
  const uint32_t lane = threadIdx.x % 32;
  const int64_t warps = int64_t{gridDim.x} * (kCopyThreads / 32);
  const int64_t k = a.g.top_k, slots = int64_t{a.offsets[a.g.world_size]} * k;
  for (int64_t s = (int64_t{blockIdx.x} * kCopyThreads + threadIdx.x) / 32; s < slots; s += warps) {
    const uint8_t* rec = received_record(a.g, a.recv, a.offsets, s / k);
    if (lane == 0) a.weights[s] = reinterpret_cast<const float*>(rec + a.g.weights_offset())[s % k];
    const int32_t row = a.slot_rows[s];
    if (row < 0) continue;
    warp_copy16(a.x + int64_t{row} * a.g.hidden, rec, a.g.hidden, lane);
    warp_copy4(a.scales + int64_t{row} * a.g.scale_count(), rec + a.g.scales_offset(), a.g.scale_count(), lane);
  }
}

// ---------------------------------------------------------------------------------------------
// Return and combine
// ---------------------------------------------------------------------------------------------
struct ReturnParams {
  EpGeometry g;
  int32_t status;
  const void* partial;
  bool partial_bf16;
  const int32_t* offsets;    // [W + 1]
  const int32_t* slot_rows;  // expanded: [R_max, k], else null
  const float* weights;      // expanded: [R_max, k]
  uint8_t* send;
};

__device__ __forceinline__ float partial_at(const ReturnParams& a, int64_t i) {
  return a.partial_bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(a.partial)[i])
                        : static_cast<const float*>(a.partial)[i];
}

// Headers by block 0; then one block per received row (columns over its threads).
__global__ void __launch_bounds__(kCopyThreads) ep_return_kernel(const ReturnParams a) {
  if (blockIdx.x == 0) {
    for (int32_t s = threadIdx.x; s < a.g.world_size; s += kCopyThreads) {
      *header_at(a.send, a.g.return_region_bytes(), s) = EpRegionHeader{0, a.status, {0, 0}};
    }
  }
  if (a.status != 0) return;
  const int64_t rows = a.offsets[a.g.world_size], h = a.g.hidden, k = a.g.top_k;
  for (int64_t i = blockIdx.x; i < rows; i += gridDim.x) {
    const int32_t s = source_of(a.offsets, a.g.world_size, i);
    float* out = reinterpret_cast<float*>(a.send + s * a.g.return_region_bytes() + kEpHeaderBytes +
                                          (i - a.offsets[s]) * a.g.return_row_bytes());
    for (int64_t c = threadIdx.x; c < h; c += kCopyThreads) {
      if (a.slot_rows == nullptr) {
        out[c] = partial_at(a, i * h + c);
        continue;
      }
      // The record's local slots in slot order, weighted, from +0 (as cpu/ep_kernels.cpp).
      float sum = 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        const int32_t row = a.slot_rows[i * k + j];
        if (row >= 0) sum = __fmaf_rn(a.weights[i * k + j], partial_at(a, int64_t{row} * h + c), sum);
      }
      out[c] = sum;
    }
  }
}

struct CombineParams {
  EpGeometry g;
  const int32_t* pos;  // [T, W]
  const uint8_t* recv;
  __nv_bfloat16* y;    // [T, H]
  uint32_t tokens;
};

// One thread per (token, 4 columns): the ranks' rows summed in rank order, float32 from +0.
__global__ void __launch_bounds__(kCopyThreads) ep_combine_kernel(const CombineParams a) {
  const int64_t h = a.g.hidden, w = a.g.world_size, quads = h / 4;
  const int64_t total = int64_t{a.tokens} * quads;
  for (int64_t q = int64_t{blockIdx.x} * kCopyThreads + threadIdx.x; q < total; q += int64_t{gridDim.x} * kCopyThreads) {
    const int64_t t = q / quads, c = (q % quads) * 4;
    float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    bool failed = false;
    for (int64_t p = 0; p < w; ++p) {
      const int32_t i = a.pos[t * w + p];
      if (i < 0) continue;
      const uint8_t* region = a.recv + p * a.g.return_region_bytes();
      failed |= header_at(region, 0, 0)->status != 0;
      const float4 v = *reinterpret_cast<const float4*>(region + kEpHeaderBytes + int64_t{i} * a.g.return_row_bytes() + c * 4);
      sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
    }
    if (failed) {
      const float nan = __int_as_float(0x7FC00000);
      sum = make_float4(nan, nan, nan, nan);
    }
    __nv_bfloat162* out = reinterpret_cast<__nv_bfloat162*>(a.y + t * h + c);
    out[0] = __floats2bfloat162_rn(sum.x, sum.y);
    out[1] = __floats2bfloat162_rn(sum.z, sum.w);
  }
}

unsigned copy_grid(int64_t warps_wanted, int num_sms) {
  const int64_t blocks = (warps_wanted + kCopyThreads / 32 - 1) / (kCopyThreads / 32);
  const int64_t cap = int64_t{num_sms} * 8;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

template <typename Kernel>
void allow_routing_smem(Kernel kernel, std::atomic<uint64_t>& done, int device, size_t extra) {
  once_per_device(done, device, [&] {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(routing_smem_bytes(kMaxExperts) + extra)),
          "cudaFuncSetAttribute(expert-parallel index kernel)");
  });
}

}  // namespace

void ep_pack(const EpPackArgs& args, const DeviceLimits& limits, cudaStream_t stream) {
  const EpGeometry& g = args.geometry;
  PackParams a;
  a.g = g;
  a.rank_begin = args.rank_begin;
  a.x = args.x.data.as<const uint8_t>();
  a.scales = args.x.scales.as<const float>();
  a.topk_idx = args.topk_idx.data;
  a.topk_int64 = args.topk_idx.dtype == MEGAMOE_DTYPE_INT64;
  a.weights = args.topk_weights.as<const float>();
  a.tokens = static_cast<uint32_t>(args.x.data.dim(0));
  a.send = static_cast<uint8_t*>(args.send);
  a.pos = args.pos;
  if (a.tokens > 0) {
    check(cudaMemsetAsync(a.pos, 0xFF, sizeof(int32_t) * a.tokens * static_cast<size_t>(g.world_size), stream),
          "cudaMemsetAsync (expert-parallel positions)");
  }
  const size_t extra = sizeof(int32_t) * (static_cast<size_t>(g.world_size) + 1);
  static std::atomic<uint64_t> smem_set{0};
  allow_routing_smem(ep_pack_index_kernel, smem_set, limits.device, sizeof(int32_t) * (kMaxExperts + 1));
  ep_pack_index_kernel<<<1, kRoutingThreads, routing_smem_bytes(static_cast<uint32_t>(g.world_size)) + extra, stream>>>(a);
  check_launch("ep_pack_index_kernel");
  if (a.tokens == 0) return;
  ep_pack_copy_kernel<<<copy_grid(int64_t{a.tokens} * g.top_k, limits.num_sms), kCopyThreads, 0, stream>>>(a);
  check_launch("ep_pack_copy_kernel");
}

void ep_unpack(const EpUnpackArgs& args, const DeviceLimits& limits, cudaStream_t stream) {
  const EpGeometry& g = args.geometry;
  const auto* recv = static_cast<const uint8_t*>(args.recv);
  ep_source_offsets_kernel<<<1, 1024, 0, stream>>>(g, recv, args.source_offsets, args.num_tokens.as<int32_t>());
  check_launch("ep_source_offsets_kernel");
  UnpackParams a;
  a.g = g;
  a.recv = recv;
  a.offsets = args.source_offsets;
  a.x = args.x.data.as<uint8_t>();
  a.scales = args.x.scales.as<float>();
  a.topk_idx = args.topk_idx.as<int32_t>();
  a.weights = args.topk_weights.as<float>();
  ep_unpack_kernel<<<copy_grid(g.max_received(), limits.num_sms), kCopyThreads, 0, stream>>>(a);
  check_launch("ep_unpack_kernel");
}

void ep_unpack_expanded(const EpUnpackExpandedArgs& args, const DeviceLimits& limits, cudaStream_t stream) {
  const EpGeometry& g = args.geometry;
  const auto* recv = static_cast<const uint8_t*>(args.recv);
  ep_source_offsets_kernel<<<1, 1024, 0, stream>>>(g, recv, args.source_offsets, nullptr);
  check_launch("ep_source_offsets_kernel");
  ExpandParams a;
  a.g = g;
  a.experts = args.num_local_experts;
  a.recv = recv;
  a.offsets = args.source_offsets;
  a.expert_offsets = args.expert_offsets.as<int32_t>();
  a.slot_rows = args.slot_rows;
  a.weights = args.topk_weights;
  a.x = args.x.data.as<uint8_t>();
  a.scales = args.x.scales.as<float>();
  static std::atomic<uint64_t> smem_set{0};
  allow_routing_smem(ep_expand_index_kernel, smem_set, limits.device, 0);
  ep_expand_index_kernel<<<1, kRoutingThreads, routing_smem_bytes(static_cast<uint32_t>(a.experts)), stream>>>(a);
  check_launch("ep_expand_index_kernel");
  ep_expand_copy_kernel<<<copy_grid(g.max_expanded(), limits.num_sms), kCopyThreads, 0, stream>>>(a);
  check_launch("ep_expand_copy_kernel");
}

void ep_return(const EpReturnArgs& args, const DeviceLimits& limits, cudaStream_t stream) {
  const EpGeometry& g = args.geometry;
  ReturnParams a;
  a.g = g;
  a.status = args.status;
  a.partial = args.partial.data;
  a.partial_bf16 = args.partial.dtype == MEGAMOE_DTYPE_BF16;
  a.offsets = args.source_offsets;
  a.slot_rows = args.slot_rows;
  a.weights = args.topk_weights;
  a.send = static_cast<uint8_t*>(args.send);
  const int64_t rows = g.max_received();
  const int64_t blocks = rows < int64_t{limits.num_sms} * 16 ? rows : int64_t{limits.num_sms} * 16;
  ep_return_kernel<<<static_cast<unsigned>(blocks > 0 ? blocks : 1), kCopyThreads, 0, stream>>>(a);
  check_launch("ep_return_kernel");
}

void ep_combine(const EpCombineArgs& args, const DeviceLimits& limits, cudaStream_t stream) {
  const EpGeometry& g = args.geometry;
  CombineParams a;
  a.g = g;
  a.pos = args.pos;
  a.recv = static_cast<const uint8_t*>(args.recv);
  a.y = args.y.as<__nv_bfloat16>();
  a.tokens = static_cast<uint32_t>(args.y.dim(0));
  if (a.tokens == 0) return;
  const int64_t threads = int64_t{a.tokens} * (g.hidden / 4);
  const int64_t blocks = (threads + kCopyThreads - 1) / kCopyThreads;
  const int64_t cap = int64_t{limits.num_sms} * 16;
  ep_combine_kernel<<<static_cast<unsigned>(blocks < cap ? blocks : cap), kCopyThreads, 0, stream>>>(a);
  check_launch("ep_combine_kernel");
}

}  // namespace megamoe::cuda
