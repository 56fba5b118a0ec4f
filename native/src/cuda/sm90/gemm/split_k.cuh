// Split-K of the dense BF16 GEMM over a thread-block cluster (docs/NUMERICS.md section 3). Shapes
// whose tiles leave most SMs idle (M <= 128 with long K) are bound by what each SM can stream, so
// one tile is spread over the `splits` CTAs of a cluster, each accumulating its slice of K blocks
// (schedule.h split_k_range). The partial tiles are then summed through distributed shared memory,
// not a global workspace: nothing to allocate, zero or reset, so the call stays stream-ordered,
// capture-safe and safe on concurrent streams. Each rank sums one column slice of the tile over all
// ranks in rank order (the same order whichever CTA finishes first: results are deterministic) and
// stores that slice as BF16 itself.
#pragma once

#include <cute/arch/cluster_sm90.hpp>
#include <cutlass/arch/barrier.h>

#include <cstdint>

#include "cuda/sm90/gemm/config.cuh"
#include "cuda/sm90/gemm/params.h"
#include "cuda/sm90/gemm/schedule.h"
#include "cuda/sm90/ptx.cuh"

namespace megamoe::cuda::sm90 {

template <class Cfg>
constexpr bool kernel_can_split_k() {
  return Cfg::kKind == GemmKind::SplitK;
}

// Runtime split count of this launch (1 for the other layouts: their code has no split path).
template <class Cfg>
__device__ __forceinline__ uint32_t kernel_k_splits(const KernelParams& p) {
  if constexpr (kernel_can_split_k<Cfg>()) return p.layout.k_splits;
  return 1;
}

// The K blocks this CTA accumulates. The cluster is (splits, 1, 1), so the rank is blockIdx.x % splits.
template <class Cfg>
__device__ __forceinline__ IndexRange cta_k_blocks(const KernelParams& p) {
  const uint32_t num_kb = p.layout.k / kGemmBlockK;
  const uint32_t splits = kernel_k_splits<Cfg>(p);
  if (splits > 1) return split_k_range(num_kb, blockIdx.x % splits, splits);
  return {0, num_kb};
}

// Rank `rank` sums its chunks (schedule.h split_k_owned_chunks) of every thread's fragment over the
// cluster, in rank order, and stores them as BF16. All of a thread's remote loads are issued before
// the first add (bench/NOTES.md run 48: ~1 us faster than one load at a time).
template <class Cfg, uint32_t kSplits>
__device__ __forceinline__ void split_k_sum_store(const KernelParams& p, const TileWork& work, uint32_t r0,
                                                  uint32_t scratch, uint32_t rank) {
  constexpr uint32_t kThreads = Cfg::kMathThreads;
  constexpr uint32_t kOwned = Cfg::kBlockN / 8 / kSplits;
  const uint32_t tid = threadIdx.x;
  // Every rank's thread tid holds the same fragment (mainloop.cuh MathTile): rows r0 and r0 + 8,
  // columns 8 i + 2 (tid % 4) + {0, 1} of chunk i.
  const IndexRange owned = split_k_owned_chunks(Cfg::kBlockN, rank, kSplits);  // kOwned chunks
  float4 v[kOwned][kSplits];
#pragma unroll
  for (uint32_t c = 0; c < kOwned; ++c) {
    const uint32_t offset = scratch + ((owned.begin + c) * kThreads + tid) * 16;
#pragma unroll
    for (uint32_t r = 0; r < kSplits; ++r) v[c][r] = ld_shared_cluster_f4(cute::set_block_rank(offset, r));
  }
  const uint64_t n = p.layout.n;
  const uint32_t col0 = work.n_block * Cfg::kBlockN + 2 * (tid % 4);
#pragma unroll
  for (uint32_t c = 0; c < kOwned; ++c) {
    float4 sum = v[c][0];
#pragma unroll
    for (uint32_t r = 1; r < kSplits; ++r) sum.x += v[c][r].x, sum.y += v[c][r].y, sum.z += v[c][r].z, sum.w += v[c][r].w;
    const uint32_t col = col0 + (owned.begin + c) * 8;
    const uint32_t row = work.row_begin + r0;
    if (row < work.row_end) {
      *reinterpret_cast<uint32_t*>(p.op.d + row * n + col) = pack_bf16x2(sum.x, sum.y);
    }
    if (row + 8 < work.row_end) {
      *reinterpret_cast<uint32_t*>(p.op.d + (row + 8) * n + col) = pack_bf16x2(sum.z, sum.w);
    }
  }
}

// Math threads, after the mainloop of the CTA's only tile (r0: the thread's fragment row,
// MathTile::r0): the cluster's sum of the tile, stored as BF16 (each rank its column slice; this
// replaces the BF16 epilogue). Every thread of every CTA of the cluster passes one cluster barrier
// here or in cluster_barrier, and one more before it exits.
template <class Cfg>
__device__ __forceinline__ void split_k_reduce_store(const KernelParams& p, const TileWork& work,
                                                     const SharedStorage<Cfg>& smem,
                                                     const float (&accum)[Cfg::kBlockN / 2], uint32_t r0,
                                                     uint32_t splits) {
  static_assert(gemm_split_scratch_fits(Cfg::kBlockM, Cfg::kBlockN, Cfg::kTmaStore),
                "the split-K partial tile must fit the pipeline stages");
  constexpr uint32_t kChunks = Cfg::kBlockN / 8;  // float4 per thread
  constexpr uint32_t kThreads = Cfg::kMathThreads;
  // Both warpgroups' wgmma reads of the stages are complete before any thread overwrites them.
  cutlass::arch::NamedBarrier::sync(kThreads, Cfg::kEpilogueBarrier);
  fence_view_async_shared();
  // The partial tile, float4 i of math thread t at [i][t] (a warp's accesses contiguous), in the
  // stages: a split-K CTA has one tile, so the producer loads nothing more.
  float4* scratch = reinterpret_cast<float4*>(smem.a);
#pragma unroll
  for (uint32_t i = 0; i < kChunks; ++i) {
    scratch[i * kThreads + threadIdx.x] =
        make_float4(accum[4 * i + 0], accum[4 * i + 1], accum[4 * i + 2], accum[4 * i + 3]);
  }
  // Release this CTA's partial tile to the cluster, acquire the peers'.
  cute::cluster_arrive();
  cute::cluster_wait();
  const uint32_t local = static_cast<uint32_t>(__cvta_generic_to_shared(scratch));
  const uint32_t rank = blockIdx.x % splits;
  if (splits == 2) {
    split_k_sum_store<Cfg, 2>(p, work, r0, local, rank);
  } else if (splits == 4) {
    if constexpr (kChunks % 4 == 0) split_k_sum_store<Cfg, 4>(p, work, r0, local, rank);
  } else {
    if constexpr (kChunks % 8 == 0) split_k_sum_store<Cfg, 8>(p, work, r0, local, rank);
  }
}

// A whole-cluster barrier (barrier.cluster counts every thread of the cluster; its .aligned form
// wants the warp converged): the producer warpgroup's side of split_k_reduce's barrier, and the last
// one of every thread of a cluster launch, so that no CTA exits while a peer may still read its
// partial tile or multicast into it.
__device__ __forceinline__ void cluster_barrier() {
  __syncwarp();
  cute::cluster_sync();
}

}  // namespace megamoe::cuda::sm90
