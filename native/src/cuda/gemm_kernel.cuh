// Persistent, warp-specialized SM90 FP8 block-scaled GEMM (docs/NUMERICS.md section 3):
//
//   warpgroups 0..BM/64-1  math: wgmma m64nBNk32 E4M3 x E4M3 -> float32 partial per 128-K block,
//                          promoted on CUDA cores as acc = fma(sa * sb, partial, acc); BF16
//                          epilogue through swizzled shared memory and a TMA store (or predicated
//                          16-byte stores for tiles that end inside a group);
//   last warpgroup         producer: one warp issues the TMA loads of A and B and stages the A and
//                          B scales of each 128-K block with them (cp.async), kStages deep, through
//                          full/empty mbarriers. Routed epilogues gather A rows by token instead
//                          (cp.async, 128B swizzle written by hand).
//
// One CTA per SM walks the tiles blockIdx.x, blockIdx.x + gridDim.x, ... of the numbering in
// core/gemm_schedule.h; producer and math warps run the same scheduler and agree on every tile.
// Under expert specialization (routed layouts, BLOCK_N = 256) a segment of at most 64 rows runs in
// 64-row tiles whose two N-waves go to the two math warpgroups ("wide" tiles) instead of 128-row
// tiles whose rows are split between them.
// The fused epilogues (routed BF16, SwiGLU + FP8, float32 + combine) are in gemm_epilogue.cuh.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cute/arch/cluster_sm90.hpp>
#include <cute/arch/copy_sm90_desc.hpp>
#include <cute/arch/copy_sm90_tma.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/arch/reg_reconfig.h>

#include <cstdint>
#include <cstdio>
#include <utility>

#include "core/gemm_heuristics.h"
#include "core/gemm_schedule.h"
#include "cuda/gemm_epilogue.cuh"
#include "cuda/gemm_params.h"
#include "cuda/sm90_ptx.cuh"

namespace megamoe::cuda::sm90 {

using cuda::GemmEpilogue;
using cuda::KernelParams;

// ---------------------------------------------------------------------------------------------
// Segment sources for the grouped schedulers (plain loads: layout data is read-only here).
// ---------------------------------------------------------------------------------------------
struct MaskedSegments {
  const int32_t* masked_m;
  uint32_t max_m;
  MEGAMOE_HD Segment operator()(uint32_t e) const { return masked_segment(e, masked_m[e], max_m); }
};

struct OffsetAt {
  const void* offsets;
  bool is64;
  MEGAMOE_HD int64_t operator()(uint32_t i) const {
    return is64 ? static_cast<const int64_t*>(offsets)[i] : static_cast<int64_t>(static_cast<const int32_t*>(offsets)[i]);
  }
};

struct OffsetSegments {
  OffsetAt at;
  uint32_t groups;
  uint32_t rows;
  MEGAMOE_HD Segment operator()(uint32_t s) const { return offsets_segment(s, groups, rows, at); }
};

struct RoutedSegments {
  const int32_t* offsets;  // [groups + 2], written by the routing kernel
  uint32_t groups;
  MEGAMOE_HD Segment operator()(uint32_t s) const { return routed_segment(s, groups, offsets[s], offsets[s + 1]); }
};

template <GemmKind kKind>
struct SegmentsFor {
  using type = MaskedSegments;  // unused for dense / contiguous
};
template <>
struct SegmentsFor<GemmKind::Offsets> {
  using type = OffsetSegments;
};
template <>
struct SegmentsFor<GemmKind::Routed> {
  using type = RoutedSegments;
};

template <GemmKind kKind, uint32_t BM, uint32_t BN, uint32_t kMulticast>
class TileScheduler {
  using Segments = typename SegmentsFor<kKind>::type;

 public:
  __device__ explicit TileScheduler(const KernelParams& p)
      : rows_(p.rows),
        n_blocks_(p.n / BN),
        band_(p.band),
        walker_(make_segments(p), num_segments(p), BM, p.n / BN, p.band, kMulticast,
                kKind == GemmKind::Routed ? p.narrow_m : 0) {}

  __device__ bool next(TileWork& work) {
    const uint32_t index = blockIdx.x + iteration_++ * gridDim.x;
    if constexpr (kKind == GemmKind::Dense || kKind == GemmKind::Contiguous) {
      return dense_tile(index, rows_, BM, n_blocks_, band_, work, kMulticast);
    } else {
      return walker_.find(index, work);
    }
  }

 private:
  __device__ static Segments make_segments(const KernelParams& p) {
    if constexpr (kKind == GemmKind::Offsets) {
      return OffsetSegments{OffsetAt{p.layout, p.layout_int64}, p.groups, p.rows};
    } else if constexpr (kKind == GemmKind::Routed) {
      return RoutedSegments{static_cast<const int32_t*>(p.layout), p.groups};
    } else {
      return MaskedSegments{static_cast<const int32_t*>(p.layout), p.max_m};
    }
  }
  __device__ static uint32_t num_segments(const KernelParams& p) {
    if constexpr (kKind == GemmKind::Offsets) return p.groups + 2;
    if constexpr (kKind == GemmKind::Masked) return p.groups;
    if constexpr (kKind == GemmKind::Routed) return p.groups + (p.dropped_segment ? 1 : 0);
    return 0;  // the walker stays idle
  }

  uint32_t rows_;
  uint32_t n_blocks_;
  uint32_t band_;
  uint32_t iteration_ = 0;
  SegmentWalker<Segments> walker_;
};

// ---------------------------------------------------------------------------------------------
// Contiguous layout: the tile's expert and whether a warpgroup's 64 rows hold any valid row.
// Warp-collective: every lane of the calling warp must call it.
// ---------------------------------------------------------------------------------------------
template <uint32_t BM>
__device__ __forceinline__ void contiguous_tile_groups(const int32_t* m_indices, uint32_t rows, uint32_t groups,
                                                       uint32_t row_begin, uint32_t lane, uint32_t wg,
                                                       int32_t& tile_group, int32_t& wg_group) {
  constexpr uint32_t kPerLane = BM / 32;
  int32_t v = -1;
#pragma unroll
  for (uint32_t j = 0; j < kPerLane; ++j) {
    const uint32_t row = row_begin + lane * kPerLane + j;
    if (row < rows) v = max(v, contiguous_row_group(__ldg(m_indices + row), groups));
  }
  tile_group = __reduce_max_sync(0xFFFFFFFFu, v);
  const bool mine = (lane * kPerLane) / 64 == wg;
  wg_group = __reduce_max_sync(0xFFFFFFFFu, mine ? v : -1);
}

// A math thread is done with a stage: it arrives on the empty barrier of every CTA whose producer
// writes into this stage. Every thread arrives for itself so that its own reads of the stage (its
// A scales) are ordered before the refill by its own release; one arrival per warp after
// __syncwarp() is also correct under the PTX memory model, but compute-sanitizer's racecheck
// cannot follow that ordering and reports the refill as a race.
template <uint32_t kMulticast>
__device__ __forceinline__ void release_stage_impl(cutlass::arch::ClusterTransactionBarrier& bar) {
  if constexpr (kMulticast == 1) {
    bar.arrive();
  } else {
#pragma unroll
    for (uint32_t c = 0; c < kMulticast; ++c) bar.arrive(c, 1u);
  }
}

template <GemmKind kKind, uint32_t BM, uint32_t BN, uint32_t kMulticast, GemmEpilogue kEpi = GemmEpilogue::Bf16>
struct GemmConfig {
  static constexpr bool kTmaStore = kEpi == GemmEpilogue::Bf16;
  static constexpr uint32_t kStages = gemm_num_stages(BM, BN, kTmaStore);
  static constexpr uint32_t kMathThreads = BM * 2;  // one warpgroup per 64 rows
  static constexpr uint32_t kThreads = kMathThreads + 128;
  static constexpr uint32_t kSmemBytes = gemm_smem_bytes(BM, BN, kTmaStore);
  static constexpr uint32_t kSwizzleD = BN * 2 >= 128 ? 128 : BN * 2;  // bytes per row of a D atom
  static constexpr uint32_t kAtomN = kSwizzleD / 2;                     // columns per D atom / TMA store
  static constexpr uint32_t kAtoms = BN / kAtomN;
  // BLOCK_N = 256 runs as two N-waves of 128 columns per k-block (one 64x128 wgmma chain and
  // promotion each), so the float32 partial stays at 64 registers next to the 128 accumulators.
  static constexpr uint32_t kWaveN = BN > 128 ? 128 : BN;
  static constexpr uint32_t kNWaves = BN / kWaveN;
  static constexpr bool kGather = cuda::epilogue_gathers_a(kEpi);
  // Registers per thread after setmaxnreg: the gathering producer computes row addresses in four
  // warps and gets more (2 x 128 x 224 + 128 x 56 fits the 64K register file).
  static constexpr uint32_t kProducerRegisters = kGather ? 56 : 40;
  static constexpr uint32_t kMathRegisters = kGather ? 224 : (BM == 128 ? 232 : 240);
  // Wide (64-row) tiles put one N-wave on each math warpgroup.
  static constexpr bool kCanWiden = kKind == GemmKind::Routed && BM == 128 && kNWaves == 2;
  static_assert(BM == 64 || BM == 128, "BLOCK_M must be 64 or 128");
  static_assert(BN == 32 || BN == 64 || BN == 128 || BN == 256, "BLOCK_N must be 32, 64, 128 or 256");
  static_assert(kStages >= 3, "too few pipeline stages");
  static_assert(kNWaves <= kGemmStageBScales, "one staged B scale per N-wave");
  static_assert(kMulticast == 1 || kMulticast == 2, "multicast over 1 or 2 CTAs");
  static_assert(kEpi == GemmEpilogue::Bf16 || (kKind == GemmKind::Routed && BM == 128 && kMulticast == 1),
                "the routed epilogues run 128-row tiles without multicast");
  static_assert(kEpi != GemmEpilogue::SwigluFp8 || BN == 256, "SwiGLU + FP8 needs one 128-column group per tile");
};

// ---------------------------------------------------------------------------------------------
// The kernel
// ---------------------------------------------------------------------------------------------
template <GemmKind kKind, uint32_t BM, uint32_t BN, uint32_t kMulticast, GemmEpilogue kEpi>
__global__ void __launch_bounds__(GemmConfig<kKind, BM, BN, kMulticast, kEpi>::kThreads, 1)
    gemm_kernel(const __grid_constant__ CUtensorMap tmap_a, const __grid_constant__ CUtensorMap tmap_b,
                const __grid_constant__ CUtensorMap tmap_d, const __grid_constant__ KernelParams p) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = GemmConfig<kKind, BM, BN, kMulticast, kEpi>;
  using Barrier = cutlass::arch::ClusterTransactionBarrier;
  constexpr uint32_t kStages = Cfg::kStages;
  constexpr uint32_t kMathThreads = Cfg::kMathThreads;
  constexpr uint32_t kMathWarps = kMathThreads / 32;
  constexpr uint32_t kBytesA = BM * kGemmBlockK;
  constexpr uint32_t kBytesB = BN * kGemmBlockK;
  constexpr uint32_t kSwizzleD = Cfg::kSwizzleD;
  constexpr uint32_t kAtomN = Cfg::kAtomN;
  constexpr uint32_t kAtoms = Cfg::kAtoms;
  constexpr uint32_t kChunksPerAtomRow = kSwizzleD / 16;
  constexpr uint32_t kWaveN = Cfg::kWaveN;
  constexpr uint32_t kNWaves = Cfg::kNWaves;
  constexpr bool kGather = Cfg::kGather;
  constexpr uint32_t kEpilogueBarrier = 1;

  // Shared memory, 1024-byte aligned for the 128B swizzle (gemm_smem_bytes reserves the slack).
  extern __shared__ uint8_t smem_raw[];
  const uint32_t raw_addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw));
  uint8_t* smem = smem_raw + ((1024u - (raw_addr & 1023u)) & 1023u);
  uint8_t* smem_d = smem;
  uint8_t* smem_a = smem_d + gemm_smem_d_bytes(BM, BN, Cfg::kTmaStore);
  uint8_t* smem_b = smem_a + kStages * kBytesA;
  float* smem_sfa = reinterpret_cast<float*>(smem_b + kStages * kBytesB);
  float* smem_sfb = smem_sfa + kStages * BM;
  Barrier* full = reinterpret_cast<Barrier*>(smem_sfb + kGemmMaxStages * kGemmStageBScales);
  Barrier* empty = full + kStages;
  // The producer warps' tables of the current tile's A rows (gathering epilogues), 32 per warp.
  int32_t* smem_rows = reinterpret_cast<int32_t*>(empty + kStages);

  const uint32_t warp = threadIdx.x / 32;
  const uint32_t lane = threadIdx.x % 32;
  const uint32_t num_kb = p.k / kGemmBlockK;

  if (threadIdx.x == kMathThreads) {
    if constexpr (!kGather) cute::prefetch_tma_descriptor(reinterpret_cast<const cute::TmaDescriptor*>(&tmap_a));
    cute::prefetch_tma_descriptor(reinterpret_cast<const cute::TmaDescriptor*>(&tmap_b));
    if constexpr (kEpi == GemmEpilogue::Bf16) {
      cute::prefetch_tma_descriptor(reinterpret_cast<const cute::TmaDescriptor*>(&tmap_d));
    }
#pragma unroll
    for (uint32_t s = 0; s < kStages; ++s) {
      // Lane 0 of producer warp 0 (with the TMA bytes) + the asynchronous A-scale (and A-row)
      // arrivals of every copying producer thread.
      full[s].init(1 + (kGather ? 128 : 32));
      empty[s].init(kMathThreads * kMulticast);  // every math thread of every CTA reading this stage
    }
    cutlass::arch::fence_barrier_init();
  }
  // With multicast the peer CTA writes into this CTA's shared memory and arrives on its barriers:
  // both must be initialized cluster-wide first.
  if constexpr (kMulticast > 1) {
    cute::cluster_arrive_relaxed();
    cute::cluster_wait();
  } else {
    __syncthreads();
  }

  TileScheduler<kKind, BM, BN, kMulticast> scheduler(p);
  TileWork work;
  uint32_t stage = 0, phase = 0;
  auto release_stage = [](Barrier& bar) { release_stage_impl<kMulticast>(bar); };
  auto advance = [&]() {
    stage = stage + 1 == kStages ? 0 : stage + 1;
    phase ^= stage == 0 ? 1u : 0u;
  };

  if (threadIdx.x >= kMathThreads) {
    // ----------------------------------- producer -----------------------------------------------
    // Warp 0 of the producer warpgroup issues the TMA loads; with a gathered A all four warps copy
    // rows, warp w the tile rows [32w, 32w + 32), so that a stage's row copies are in flight from
    // 128 threads (one warp alone is latency-bound on them).
    cutlass::arch::warpgroup_reg_dealloc<Cfg::kProducerRegisters>();
    const uint32_t producer_warp = warp - kMathWarps;
    if (kGather || producer_warp == 0) {
      const uint64_t hint = static_cast<uint64_t>(cute::TMA::CacheHintSm90::EVICT_NORMAL);
      const uint32_t sfa_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem_sfa));
      const uint32_t sfb_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem_sfb));
      const uint32_t a_smem_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem_a));
      const uint32_t full_base = static_cast<uint32_t>(__cvta_generic_to_shared(full));
      int32_t* my_rows = smem_rows + producer_warp * 32;
      while (scheduler.next(work)) {
        int32_t group = work.group;
        if constexpr (kKind == GemmKind::Contiguous) {
          int32_t unused;
          contiguous_tile_groups<BM>(static_cast<const int32_t*>(p.layout), p.rows, p.groups, work.row_begin, lane, 0,
                                     group, unused);
        }
        if (group < 0) continue;  // zero tile: nothing to load
        uint32_t my_valid = 0;  // rows of this warp's 32 that belong to the tile's segment
        if constexpr (kGather) {
          // The token behind each of this warp's rows (rows past the segment are not loaded: their
          // stale shared memory only reaches accumulator rows the epilogue never writes).
          const uint32_t first = work.row_begin + producer_warp * 32;
          my_valid = first < work.row_end ? min(32u, work.row_end - first) : 0u;
          __syncwarp();
          if (lane < my_valid) my_rows[lane] = static_cast<int32_t>(static_cast<uint32_t>(__ldg(p.row_slot + first + lane)) / p.top_k);
          __syncwarp();
        }
        const int32_t b_row = static_cast<int32_t>(static_cast<uint32_t>(group) * p.n + work.n_block * BN);
        // Lanes 0 .. kNWaves-1 of warp 0 stage the tile's B scales with each K block: one row of the
        // [N/128, K/128] scale matrix per N-wave; for SwiGLU the gate and the up row of the canonical
        // (non-interleaved) scales, since the tile's interleaved columns are gate and up rows
        // [128 n_block, 128 n_block + 128) of w13 (core/layouts.h).
        const bool stages_sfb = producer_warp == 0 && lane < kNWaves;
        const float* sfb_row = p.sfb;
        if (stages_sfb) {
          uint32_t scale_row = (work.n_block * BN) / 128 + lane;
          if constexpr (kEpi == GemmEpilogue::SwigluFp8) scale_row = work.n_block + lane * (p.act_cols / 128);
          sfb_row = p.sfb + (static_cast<uint64_t>(group) * (p.n / 128) + scale_row) * num_kb;
        }
        for (uint32_t kb = 0; kb < num_kb; ++kb) {
          empty[stage].wait(phase ^ 1u);
          if (producer_warp == 0 && lane == 0) {
            uint64_t* bar = reinterpret_cast<uint64_t*>(&full[stage]);
            if constexpr (kGather) {
              // A comes by cp.async below.
            } else if constexpr (kMulticast > 1) {
              // This CTA's half of the A tile, into the same stage of both CTAs of the cluster
              // (the pair shares the m-block; each posts A + B bytes on its own full barrier).
              const uint32_t rank = cute::block_rank_in_cluster();
              cute::SM90_TMA_LOAD_MULTICAST_2D::copy(
                  &tmap_a, bar, static_cast<uint16_t>((1u << kMulticast) - 1u), hint,
                  smem_a + stage * kBytesA + rank * (BM / kMulticast) * kGemmBlockK,
                  static_cast<int32_t>(kb * kGemmBlockK), static_cast<int32_t>(work.row_begin + rank * (BM / kMulticast)));
            } else {
              cute::SM90_TMA_LOAD_2D::copy(&tmap_a, bar, hint, smem_a + stage * kBytesA,
                                           static_cast<int32_t>(kb * kGemmBlockK), static_cast<int32_t>(work.row_begin));
            }
            cute::SM90_TMA_LOAD_2D::copy(&tmap_b, bar, hint, smem_b + stage * kBytesB, static_cast<int32_t>(kb * kGemmBlockK),
                                         b_row);
          }
          const uint32_t sfa_dst = sfa_base + stage * BM * 4;
          if (stages_sfb) cp_async_4(sfb_base + (stage * kNWaves + lane) * 4, sfb_row + kb, 4u);
          if constexpr (kGather) {
            // Lane covers 16-byte chunk lane % 8 of rows lane / 8 + 4j of this warp's 32: each warp
            // instruction reads 4 whole 128-byte rows and writes them conflict-free.
            const uint32_t chunk = lane % 8;
            const uint32_t a_dst = a_smem_base + stage * kBytesA;
#pragma unroll
            for (uint32_t j = 0; j < 8; ++j) {
              const uint32_t r = lane / 8 + 4 * j;
              if (r < my_valid) {
                const uint8_t* src = p.a + static_cast<uint64_t>(my_rows[r]) * p.k + kb * kGemmBlockK + chunk * 16;
                cp_async_16(a_dst + swizzle128_offset(producer_warp * 32 + r, chunk), src, 16u);
              }
            }
            if (lane < my_valid) {
              cp_async_4(sfa_dst + (producer_warp * 32 + lane) * 4,
                         p.sfa + static_cast<uint64_t>(my_rows[lane]) * num_kb + kb, 4u);
            }
          } else {
            // A scales straight from the row-major [rows, K/128] tensor, asynchronously: the producer
            // never waits on their latency (a plain load here serializes every stage on it).
#pragma unroll
            for (uint32_t i = lane; i < BM; i += 32) {
              const uint32_t row = work.row_begin + i;
              const bool in = row < p.rows;
              cp_async_4(sfa_dst + i * 4, in ? p.sfa + static_cast<uint64_t>(row) * num_kb + kb : p.sfa, in ? 4u : 0u);
            }
          }
          cp_async_arrive_noinc(full_base + stage * 8);
          if (producer_warp == 0 && lane == 0) full[stage].arrive_and_expect_tx(kGather ? kBytesB : kBytesA + kBytesB);
          advance();
        }
      }
    }
  } else {
    // ----------------------------------- math ---------------------------------------------------
    cutlass::arch::warpgroup_reg_alloc<Cfg::kMathRegisters>();
    const uint32_t wg = threadIdx.x / 128;
    const uint32_t b_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem_b));
    const uint32_t d_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem_d));

    while (scheduler.next(work)) {
      int32_t group = __shfl_sync(0xFFFFFFFFu, work.group, 0);  // warp-uniform, like wg_active below
      // Wide tile (expert specialization): both warpgroups take the tile's 64 rows, one N-wave each.
      const bool wide = Cfg::kCanWiden && work.block_rows < BM;
      const uint32_t row_base = wide ? 0 : wg * 64;
      const uint32_t r0 = row_base + (warp % 4) * 16 + lane / 4;  // tile rows of this thread's accumulators
      const uint32_t r1 = r0 + 8;
      const uint32_t first_wave = wide ? wg : 0;
      const uint32_t last_wave = wide ? wg : kNWaves - 1;
      const uint32_t a_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem_a)) + row_base * kGemmBlockK;
      bool wg_active;
      if constexpr (kKind == GemmKind::Contiguous) {
        int32_t wg_group;
        contiguous_tile_groups<BM>(static_cast<const int32_t*>(p.layout), p.rows, p.groups, work.row_begin, lane, wg,
                                   group, wg_group);
        wg_active = wg_group >= 0;
      } else {
        // Broadcast from lane 0 so that ptxas sees a warp-uniform branch around the wgmma chains:
        // measured 3 % faster on dense and 7 % on masked shapes (bench/NOTES.md, run 30); branches it
        // cannot prove uniform can make it serialize every wgmma (warning C7518, runs 25 and 29).
        wg_active = __shfl_sync(0xFFFFFFFFu, work.row_begin + row_base < work.row_end ? 1 : 0, 0) != 0;
      }

      float accum[BN / 2];
#pragma unroll
      for (uint32_t i = 0; i < BN / 2; ++i) accum[i] = 0.0f;

      if (group >= 0) {
        for (uint32_t kb = 0; kb < num_kb; ++kb) {
          full[stage].wait(phase);
          float sb[kNWaves];
#pragma unroll
          for (uint32_t w = 0; w < kNWaves; ++w) sb[w] = smem_sfb[stage * kNWaves + w];
          if constexpr (kGather) fence_view_async_shared();  // A rows were written by cp.async
          if (wg_active) {
            const float sa0 = smem_sfa[stage * BM + r0];
            const float sa1 = smem_sfa[stage * BM + r1];
#pragma unroll
            for (uint32_t w = 0; w < kNWaves; ++w) {
              if (w < first_wave || w > last_wave) continue;
              float partial[kWaveN / 2];
#pragma unroll
              for (uint32_t i = 0; i < kWaveN / 2; ++i) fence_operand(partial[i]);
              wgmma_fence();
#pragma unroll
              for (uint32_t k = 0; k < kGemmBlockK / 32; ++k) {
                wgmma<kWaveN>(smem_desc(a_base + stage * kBytesA + k * 32),
                              smem_desc(b_base + stage * kBytesB + w * kWaveN * kGemmBlockK + k * 32), partial, k > 0);
              }
              wgmma_commit();
#pragma unroll
              for (uint32_t i = 0; i < kWaveN / 2; ++i) fence_operand(partial[i]);
              wgmma_wait_all();
              if (w == last_wave) release_stage(empty[stage]);
              // Promotion: acc = fma(sa * sb, partial, acc), the scale product rounded first. For
              // SwiGLU, 8-column chunk i is gate (even i, scale row 0) or up (odd i, scale row 1).
              float* acc = accum + w * (kWaveN / 2);
#pragma unroll
              for (uint32_t i = 0; i < kWaveN / 8; ++i) {
                const float b = kEpi == GemmEpilogue::SwigluFp8 ? sb[i % 2] : sb[w];
                const float s0 = sa0 * b;
                const float s1 = sa1 * b;
                acc[4 * i + 0] = __fmaf_rn(s0, partial[4 * i + 0], acc[4 * i + 0]);
                acc[4 * i + 1] = __fmaf_rn(s0, partial[4 * i + 1], acc[4 * i + 1]);
                acc[4 * i + 2] = __fmaf_rn(s1, partial[4 * i + 2], acc[4 * i + 2]);
                acc[4 * i + 3] = __fmaf_rn(s1, partial[4 * i + 3], acc[4 * i + 3]);
              }
            }
          } else {
            release_stage(empty[stage]);
          }
          advance();
        }
      }

      // ------------------------------- epilogue ---------------------------------------------------
      if constexpr (kEpi != GemmEpilogue::Bf16) {
        const Fragment frag{r0, lane % 4, first_wave, last_wave};
        if constexpr (kEpi == GemmEpilogue::RoutedBf16) {
          epilogue_routed_bf16<BN, kWaveN>(p, work, frag, accum);
        } else if constexpr (kEpi == GemmEpilogue::SwigluFp8) {
          epilogue_swiglu_fp8<kMathThreads>(p, work, frag, accum, wide, reinterpret_cast<float*>(smem_d),
                                            kEpilogueBarrier);
        } else {
          epilogue_store_z<BN, kWaveN>(p, work, frag, accum);
          combine_tile_tokens<BM, BN, kMathThreads>(p, work, reinterpret_cast<int32_t*>(smem_d), kEpilogueBarrier);
        }
        continue;
      }
      // Rows that must read as zero: contiguous rows of another (or no) expert.
      if constexpr (kKind == GemmKind::Contiguous) {
        const int32_t* m_indices = static_cast<const int32_t*>(p.layout);
        const uint32_t row0 = work.row_begin + r0, row1 = work.row_begin + r1;
        const bool ok0 = group >= 0 && row0 < p.rows && contiguous_row_group(__ldg(m_indices + row0), p.groups) == group;
        const bool ok1 = group >= 0 && row1 < p.rows && contiguous_row_group(__ldg(m_indices + row1), p.groups) == group;
#pragma unroll
        for (uint32_t i = 0; i < BN / 8; ++i) {
          if (!ok0) accum[4 * i + 0] = 0.0f, accum[4 * i + 1] = 0.0f;
          if (!ok1) accum[4 * i + 2] = 0.0f, accum[4 * i + 3] = 0.0f;
        }
      }

      // The previous tile's TMA store must have read smem_d before it is overwritten.
      if (threadIdx.x < kAtoms) cute::tma_store_wait<0>();
      cutlass::arch::NamedBarrier::sync(kMathThreads, kEpilogueBarrier);

      // Registers -> smem_d: atoms of [BM rows][kSwizzleD bytes], 16-byte chunks swizzled as TMA's
      // SWIZZLE_<kSwizzleD>B expects (chunk ^= (byte offset >> 7) % chunks per row).
#pragma unroll
      for (uint32_t i = 0; i < BN / 8; ++i) {
        const uint32_t atom = i / kChunksPerAtomRow;
        const uint32_t in_atom = i % kChunksPerAtomRow;
        const uint32_t chunk = in_atom + lane * kChunksPerAtomRow;  // lanes 0-15 address rows warp*16 + lane
        const uint32_t line = chunk / 8;
        const uint32_t col = (chunk % 8) ^ (line % kChunksPerAtomRow);
        const uint32_t addr = d_base + atom * BM * kSwizzleD + warp * 16 * kSwizzleD + line * 128 + col * 16;
        stmatrix_x2(addr, pack_bf16x2(accum[4 * i + 0], accum[4 * i + 1]), pack_bf16x2(accum[4 * i + 2], accum[4 * i + 3]));
      }

      bool whole_tile = true;
      if constexpr (kKind == GemmKind::Masked || kKind == GemmKind::Offsets) {
        whole_tile = work.row_begin + BM <= work.row_end;
      }
      if (whole_tile) {
        // TMA store (it clips rows >= p.rows).
        cute::tma_store_fence();
        cutlass::arch::NamedBarrier::sync(kMathThreads, kEpilogueBarrier);
        if (threadIdx.x < kAtoms) {
          cute::SM90_TMA_STORE_2D::copy(&tmap_d, smem_d + threadIdx.x * BM * kSwizzleD,
                                        static_cast<int32_t>(work.n_block * BN + threadIdx.x * kAtomN),
                                        static_cast<int32_t>(work.row_begin));
          cute::tma_store_arrive();
        }
      } else {
        // The tile ends inside its segment: write only rows [row_begin, row_end).
        cutlass::arch::NamedBarrier::sync(kMathThreads, kEpilogueBarrier);
        constexpr uint32_t kChunksPerRow = BN / 8;
        for (uint32_t idx = threadIdx.x; idx < BM * kChunksPerRow; idx += kMathThreads) {
          const uint32_t row = idx / kChunksPerRow;
          const uint32_t c = idx % kChunksPerRow;
          const uint32_t grow = work.row_begin + row;
          if (grow >= work.row_end) continue;
          uint32_t off = row * kSwizzleD + (c % kChunksPerAtomRow) * 16;
          off ^= ((off >> 7) % kChunksPerAtomRow) << 4;
          const uint4 v = *reinterpret_cast<const uint4*>(smem_d + (c / kChunksPerAtomRow) * BM * kSwizzleD + off);
          *reinterpret_cast<uint4*>(p.d + static_cast<uint64_t>(grow) * p.n + work.n_block * BN + c * 8) = v;
        }
      }
    }
    if constexpr (kEpi == GemmEpilogue::Bf16) {
      if (threadIdx.x < kAtoms) cute::tma_store_wait<0>();
    }
  }
  // No CTA of a cluster may exit while its peer can still multicast into it or arrive on its
  // barriers; every thread of both CTAs reaches this point.
  if constexpr (kMulticast > 1) cute::cluster_sync();
#else
  if (blockIdx.x == 0 && threadIdx.x == 0) printf("megamoe: the SM90 GEMM kernel needs sm_90a\n");
#endif
}

}  // namespace megamoe::cuda::sm90
