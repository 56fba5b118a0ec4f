// The producer warpgroup of the SM90 GEMM kernel: fills the kStages-deep ring of shared-memory
// stages, one 128-K block of the A tile and the B tile per stage, through full/empty mbarriers, and
// the ring of scale slots (config.cuh ScaleSlotState), 4 K blocks' A and B scales per slot. Warp 0
// issues the TMA loads of A and B (A multicast over the cluster when kMulticast > 1) and, with the
// first K block of each slot, of the slot's scales; where the scale rows do not allow a TMA box
// (smem_budget.h gemm_scales_by_tma) its lanes copy each K block's scales by cp.async instead, so the
// producer never waits on their latency. Gathering epilogues copy A rows by token instead, from all four warps (warp w the
// tile rows [32w, 32w + 32), so that a stage's row copies are in flight from 128 threads; one warp
// alone is latency-bound on them), 128B swizzle written by hand. Their per-stage work is kept to one
// address and one copy per row: the producer warps share the math warps' issue slots, and at four
// warps' worth of per-row address arithmetic they took a fifth of them (bench/NOTES.md, run 62).
#pragma once

#include <cuda.h>

#include <cute/arch/cluster_sm90.hpp>
#include <cute/arch/copy_sm90_desc.hpp>
#include <cute/arch/copy_sm90_tma.hpp>

#include <cstdint>

#include "cuda/sm90/gemm/config.cuh"
#include "cuda/sm90/gemm/params.h"
#include "cuda/sm90/gemm/scheduler.cuh"
#include "cuda/sm90/gemm/split_k.cuh"
#include "cuda/sm90/ptx.cuh"

namespace megamoe::cuda::sm90 {

template <class Cfg>
__device__ __forceinline__ void run_producer(const CUtensorMap& tmap_a, const CUtensorMap& tmap_b,
                                             const CUtensorMap& tmap_sfa, const CUtensorMap& tmap_sfb,
                                             const KernelParams& p, const SharedStorage<Cfg>& smem,
                                             uint32_t producer_warp, uint32_t lane) {
  constexpr GemmKind kKind = Cfg::kKind;
  constexpr uint32_t BM = Cfg::kBlockM, BN = Cfg::kBlockN, kMulticast = Cfg::kMulticast;
  constexpr uint32_t kNWaves = Cfg::kNWaves;
  constexpr uint32_t kBytesA = Cfg::kBytesA, kBytesB = Cfg::kBytesB;
  constexpr bool kGather = Cfg::kGather;
  if (!kGather && producer_warp != 0) return;

  const uint32_t num_kb = p.layout.k / kGemmBlockK;
  const IndexRange k_blocks = cta_k_blocks<Cfg>(p);  // all of them, but for split-K
  const uint64_t hint = static_cast<uint64_t>(cute::TMA::CacheHintSm90::EVICT_NORMAL);
  const uint32_t sfa_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem.sfa));
  const uint32_t sfb_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem.sfb));
  const uint32_t full_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem.full));
  int32_t* my_rows = smem.rows + producer_warp * 32;
  // Gathering: lane copies 16-byte chunk lane % 8 of this warp's rows r_j = row0 + 4j (j < 8): each
  // warp instruction reads 4 whole 128-byte rows and writes them conflict-free. Rows of even j share
  // row0's place in the 8-row swizzle group and rows of odd j row0 + 4's, so two swizzled bases serve
  // all eight (one address per row and stage: see above).
  const uint32_t chunk = lane % 8;
  const uint32_t row0 = producer_warp * 32 + lane / 8;
  const uint32_t a_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem.a));
  const uint32_t a_dst_even = a_base + swizzle128_offset(row0, chunk);
  const uint32_t a_dst_odd = a_base + swizzle128_offset(row0 + 4, chunk);

  // Scales by TMA: lane 0 copies a slot's A and B scales with the first of its K blocks.
  const bool scales_by_tma = !kGather && p.op.scales_by_tma;
  constexpr uint32_t kSfaSlotBytes = SharedStorage<Cfg>::kSfaSlotFloats * 4;
  constexpr uint32_t kSfbSlotBytes = SharedStorage<Cfg>::kSfbSlotFloats * 4;

  TileScheduler<kKind, BM, BN, kMulticast> scheduler(p);
  PipelineState<Cfg::kStages> pipe;
  ScaleSlotState<Cfg::kStages> scales;
  TileWork work;
  while (scheduler.next(work)) {
    int32_t group = work.group;
    if constexpr (kKind == GemmKind::Contiguous) {
      int32_t unused;
      contiguous_tile_groups<BM>(static_cast<const int32_t*>(p.layout.groups_data), p.layout.rows, p.layout.groups,
                                 work.row_begin, lane, 0, group, unused);
    }
    if (group < 0) continue;  // zero tile: nothing to load
    // Gathering, per tile: the tokens of this lane's rows r_j (bit j of row_bits: r_j is inside the
    // tile's segment; rows past it are not loaded, their stale shared memory only reaches
    // accumulator rows the epilogue never writes) and the A-scale row of its own row `lane`.
    uint32_t tokens[8] = {};
    uint32_t row_bits = 0;
    const float* sfa_row = p.op.sfa;
    bool sfa_valid = false;
    if constexpr (kGather) {
      const uint32_t first = work.row_begin + producer_warp * 32;
      const uint32_t my_valid = first < work.row_end ? min(32u, work.row_end - first) : 0u;
      __syncwarp();
      if (lane < my_valid) {
        my_rows[lane] = static_cast<int32_t>(static_cast<uint32_t>(__ldg(p.routed.row_slot + first + lane)) / p.routed.top_k);
      }
      __syncwarp();
#pragma unroll
      for (uint32_t j = 0; j < 8; ++j) {
        if (lane / 8 + 4 * j < my_valid) {
          tokens[j] = static_cast<uint32_t>(my_rows[lane / 8 + 4 * j]);
          row_bits |= 1u << j;
        }
      }
      sfa_valid = lane < my_valid;
      if (sfa_valid) sfa_row = p.op.sfa + static_cast<uint64_t>(static_cast<uint32_t>(my_rows[lane])) * num_kb;
    }
    const int32_t b_row = static_cast<int32_t>(static_cast<uint32_t>(group) * p.layout.n + work.n_block * BN);
    // Without TMA, lanes 0 .. kNWaves-1 of warp 0 copy the tile's B scales with each K block: one row of the
    // [N/128, K/128] scale matrix per N-wave; for SwiGLU the gate and the up row of the canonical
    // (non-interleaved) scales, since the tile's interleaved columns are gate and up rows
    // [128 n_block, 128 n_block + 128) of w13 (core/layouts.h).
    const bool stages_sfb = producer_warp == 0 && lane < kNWaves && !scales_by_tma;
    const uint32_t sfb_row0 = group * (p.layout.n / 128) + (work.n_block * BN) / 128;  // N-wave 0's scale row
    const float* sfb_row = p.op.sfb;
    if (stages_sfb) {
      uint32_t scale_row = sfb_row0 + lane;
      if constexpr (Cfg::kEpi == GemmEpilogue::SwigluFp8) {
        scale_row = group * (p.layout.n / 128) + work.n_block + lane * (p.swiglu.act_cols / 128);
      }
      sfb_row = p.op.sfb + static_cast<uint64_t>(scale_row) * num_kb;
    }
    scales.begin_tile(k_blocks.begin);
    for (uint32_t kb = k_blocks.begin; kb < k_blocks.end; ++kb) {
      const uint32_t stage = pipe.stage;
      smem.empty[stage].wait(pipe.phase ^ 1u);
      uint32_t bytes = kGather ? kBytesB : kBytesA + kBytesB;  // lane 0's TMA bytes
      if (producer_warp == 0 && lane == 0) {
        uint64_t* bar = reinterpret_cast<uint64_t*>(&smem.full[stage]);
        if (scales_by_tma && (scales.block == 0 || kb == k_blocks.begin)) {
          // The slot's whole box of 4 K blocks; this CTA's own scale rows, also under multicast (the
          // pair shares the rows, not the B rows).
          const int32_t kb0 = static_cast<int32_t>(kb - scales.block);
          cute::SM90_TMA_LOAD_2D::copy(&tmap_sfa, bar, hint, smem.sfa + scales.slot * (kSfaSlotBytes / 4), kb0,
                                       static_cast<int32_t>(work.row_begin));
          cute::SM90_TMA_LOAD_2D::copy(&tmap_sfb, bar, hint, smem.sfb + scales.slot * (kSfbSlotBytes / 4), kb0,
                                       static_cast<int32_t>(sfb_row0));
          bytes += BM * kGemmScaleChunk * 4 + kNWaves * kGemmScaleChunk * 4;
        }
        if constexpr (kGather) {
          // A comes by cp.async below.
        } else if constexpr (kMulticast > 1) {
          // This CTA's half of the A tile, into the same stage of both CTAs of the cluster
          // (the pair shares the m-block; each posts A + B bytes on its own full barrier).
          const uint32_t rank = cute::block_rank_in_cluster();
          cute::SM90_TMA_LOAD_MULTICAST_2D::copy(
              &tmap_a, bar, static_cast<uint16_t>((1u << kMulticast) - 1u), hint,
              smem.a + stage * kBytesA + rank * (BM / kMulticast) * kGemmBlockK, static_cast<int32_t>(kb * kGemmBlockK),
              static_cast<int32_t>(work.row_begin + rank * (BM / kMulticast)));
        } else {
          cute::SM90_TMA_LOAD_2D::copy(&tmap_a, bar, hint, smem.a + stage * kBytesA, static_cast<int32_t>(kb * kGemmBlockK),
                                       static_cast<int32_t>(work.row_begin));
        }
        cute::SM90_TMA_LOAD_2D::copy(&tmap_b, bar, hint, smem.b + stage * kBytesB, static_cast<int32_t>(kb * kGemmBlockK),
                                     b_row);
      }
      // Scales by cp.async go to the same slots: row r of K block j of the slot at [r][j].
      const uint32_t sfa_dst = sfa_base + scales.slot * kSfaSlotBytes + scales.block * 4;
      if (stages_sfb) {
        cp_async_4(sfb_base + scales.slot * kSfbSlotBytes + (lane * kGemmScaleChunk + scales.block) * 4, sfb_row + kb, 4u);
      }
      if constexpr (kGather) {
        const uint8_t* src_kb = p.op.a + kb * kGemmBlockK + chunk * 16;
#pragma unroll
        for (uint32_t j = 0; j < 8; ++j) {
          if (row_bits >> j & 1u) {
            cp_async_16((j % 2 == 0 ? a_dst_even + j * 512 : a_dst_odd + (j - 1) * 512) + stage * kBytesA,
                        src_kb + static_cast<uint64_t>(tokens[j]) * p.layout.k, 16u);
          }
        }
        if (sfa_valid) cp_async_4(sfa_dst + (producer_warp * 32 + lane) * (kGemmScaleChunk * 4), sfa_row + kb, 4u);
      } else if (!scales_by_tma) {
        // A scales straight from the row-major [rows, K/128] tensor, asynchronously: the producer
        // never waits on their latency (a plain load here serializes every stage on it).
        if constexpr (BM <= 128) {
#pragma unroll
          for (uint32_t i = lane; i < BM; i += 32) {
            const uint32_t row = work.row_begin + i;
            const bool in = row < p.layout.rows;
            cp_async_4(sfa_dst + i * (kGemmScaleChunk * 4), in ? p.op.sfa + static_cast<uint64_t>(row) * num_kb + kb : p.op.sfa,
                       in ? 4u : 0u);
          }
        } else {
          // Six rows per lane: unrolled, the 40-register producer kept their addresses in registers,
          // spilled them inside this loop and starved the math warps (bench/NOTES.md, runs 53-56); one
          // running pointer in a rolled loop does not spill (rolled for 128 rows, dense ran 2-4 % slower).
          const float* src = p.op.sfa + static_cast<uint64_t>(work.row_begin + lane) * num_kb + kb;
#pragma unroll 1
          for (uint32_t i = lane; i < BM; i += 32, src += 32 * static_cast<uint64_t>(num_kb)) {
            const bool in = work.row_begin + i < p.layout.rows;
            cp_async_4(sfa_dst + i * (kGemmScaleChunk * 4), in ? src : p.op.sfa, in ? 4u : 0u);
          }
        }
      }
      if (!scales_by_tma) cp_async_arrive_noinc(full_base + stage * 8);
      if (producer_warp == 0 && lane == 0) smem.full[stage].arrive_and_expect_tx(bytes);
      scales.advance();
      pipe.advance();
    }
    scales.end_tile();
  }
}

}  // namespace megamoe::cuda::sm90
