// The math warpgroups' mainloop of the SM90 GEMM kernel (docs/NUMERICS.md section 3): per 128-K
// block, wgmma m64nWk32 E4M3 x E4M3 chains into a fresh float32 partial (W = min(BLOCK_N, 128);
// BLOCK_N = 256 runs two N-waves), then the promotion acc = fma(sa * sb, partial, acc) on CUDA
// cores with the scale product rounded first.
#pragma once

#include <cstdint>

#include "cuda/sm90/gemm/config.cuh"
#include "cuda/sm90/gemm/params.h"
#include "cuda/sm90/gemm/scheduler.cuh"
#include "cuda/sm90/gemm/split_k.cuh"
#include "cuda/sm90/ptx.cuh"

namespace megamoe::cuda::sm90 {

// The share of a tile that math warpgroup wg computes: in a wide tile both warpgroups take the tile's
// 64 rows and one N-wave each, otherwise warpgroup wg the rows [64 wg, 64 wg + 64) and every wave.
struct WarpgroupShare {
  uint32_t a_row_base;  // first tile row of the warpgroup's A operand
  uint32_t first_wave;  // N-waves [first_wave, last_wave]
  uint32_t last_wave;
};
template <uint32_t kNWaves>
__device__ __forceinline__ WarpgroupShare warpgroup_share(uint32_t wg, bool wide) {
  return wide ? WarpgroupShare{0, wg, wg} : WarpgroupShare{wg * 64, 0, kNWaves - 1};
}

// Which rows and N-waves a math thread computes for the current tile (its warpgroup_share, which
// run_mainloop_rows derives again from a compile-time `wide` for the uniform datapath).
struct MathTile {
  int32_t group;        // B group (expert); -1: the tile is written as zeros, no MMA
  bool wg_active;       // this warpgroup's rows hold at least one row of the tile's segment
  bool wide;            // expert specialization: both warpgroups take the tile's 64 rows, one N-wave each
  uint32_t r0;          // tile-local row of acc[.. + {0, 1}]; r0 + 8 holds acc[.. + {2, 3}]
  uint32_t first_wave;  // N-waves [first_wave, last_wave] are this warpgroup's
  uint32_t last_wave;
};

// Warp-collective (contiguous layouts read m_indices with every lane).
template <class Cfg>
__device__ __forceinline__ MathTile math_tile(const KernelParams& p, const TileWork& work, uint32_t warp, uint32_t lane,
                                              uint32_t wg) {
  MathTile t;
  t.group = __shfl_sync(0xFFFFFFFFu, work.group, 0);  // warp-uniform, like wg_active below
  // Warp-uniform through lane 0 like the group: run_mainloop branches on it.
  t.wide = Cfg::kCanWiden && __shfl_sync(0xFFFFFFFFu, work.block_rows < Cfg::kBlockM ? 1 : 0, 0) != 0;
  const WarpgroupShare share = warpgroup_share<Cfg::kNWaves>(wg, t.wide);
  t.r0 = share.a_row_base + (warp % 4) * 16 + lane / 4;
  t.first_wave = share.first_wave;
  t.last_wave = share.last_wave;
  if constexpr (Cfg::kKind == GemmKind::Contiguous) {
    int32_t wg_group;
    contiguous_tile_groups<Cfg::kBlockM>(static_cast<const int32_t*>(p.layout.groups_data), p.layout.rows,
                                         p.layout.groups, work.row_begin, lane, wg, t.group, wg_group);
    t.wg_active = wg_group >= 0;
  } else {
    // Broadcast from lane 0 so that ptxas sees a warp-uniform branch around the wgmma chains:
    // measured 3 % faster on dense and 7 % on masked shapes (bench/NOTES.md, run 30); branches it
    // cannot prove uniform can make it serialize every wgmma (warning C7518, runs 25 and 29).
    t.wg_active = __shfl_sync(0xFFFFFFFFu, work.row_begin + share.a_row_base < work.row_end ? 1 : 0, 0) != 0;
  }
  return t;
}

// The mainloop for one kind of tile; kWide: both warpgroups on the tile's 64 rows, one N-wave each.
// Operand rows and waves are derived here from the warpgroup index and kWide, not read from t, so
// that ptxas builds the wgmma descriptors on the uniform datapath as for the other layouts (from t
// it built them in vector registers on every K block: bench/NOTES.md, run 64).
template <class Cfg, bool kWide>
__device__ __forceinline__ void run_mainloop_rows(const KernelParams& p, const SharedStorage<Cfg>& smem,
                                                  PipelineState<Cfg::kStages>& pipe,
                                                  ScaleSlotState<Cfg::kStages>& scales, const MathTile& t,
                                                  float (&accum)[Cfg::kBlockN / 2]) {
  constexpr uint32_t kWaveN = Cfg::kWaveN, kNWaves = Cfg::kNWaves;
  // Broadcast from lane 0, like DeepGEMM, so that ptxas keeps what derives from it uniform.
  const WarpgroupShare share = warpgroup_share<kNWaves>(__shfl_sync(0xFFFFFFFFu, threadIdx.x / 128, 0), kWide);
  const uint32_t first_wave = share.first_wave;
  const uint32_t last_wave = share.last_wave;
  const IndexRange k_blocks = cta_k_blocks<Cfg>(p);
  const uint32_t a_start = __shfl_sync(
      0xFFFFFFFFu,
      smem_desc_start(static_cast<uint32_t>(__cvta_generic_to_shared(smem.a)) + share.a_row_base * kGemmBlockK), 0);
  const uint32_t b_start = __shfl_sync(0xFFFFFFFFu, smem_desc_start(static_cast<uint32_t>(__cvta_generic_to_shared(smem.b))), 0);
  const uint32_t r1 = t.r0 + 8;
  scales.begin_tile(k_blocks.begin);
  if constexpr (Cfg::kActiveTestOutsideLoop) {
    if (!t.wg_active) {
      // None of the tile's rows is this warpgroup's: it only keeps the stages' barriers in step.
      for (uint32_t kb = k_blocks.begin; kb < k_blocks.end; ++kb) {
        smem.full[pipe.stage].wait(pipe.phase);
        release_stage<Cfg::kMulticast>(smem.empty[pipe.stage]);
        scales.advance();
        pipe.advance();
      }
      scales.end_tile();
      return;
    }
  }
#pragma unroll (Cfg::kMainloopUnroll)
  for (uint32_t kb = k_blocks.begin; kb < k_blocks.end; ++kb) {
    const uint32_t stage = pipe.stage;
    smem.full[stage].wait(pipe.phase);
    const float* sfa = smem.sfa + scales.slot * SharedStorage<Cfg>::kSfaSlotFloats + scales.block;
    const float* sfb = smem.sfb + scales.slot * SharedStorage<Cfg>::kSfbSlotFloats + scales.block;
    float sb[kNWaves];
#pragma unroll
    for (uint32_t w = 0; w < kNWaves; ++w) sb[w] = sfb[w * kGemmScaleChunk];
    if constexpr (Cfg::kGather) fence_view_async_shared();  // A rows were written by cp.async
    if (Cfg::kActiveTestOutsideLoop || t.wg_active) {
      // Descriptor starts in 16-byte units throughout: a K step's operands are then one add of an
      // immediate to the stage's start (byte offsets took three uniform instructions each, run 89).
      const uint32_t a_stage = a_start + stage * (Cfg::kBytesA / 16);
      const uint32_t b_stage = b_start + stage * (Cfg::kBytesB / 16);
      const float sa0 = sfa[t.r0 * kGemmScaleChunk];
      const float sa1 = sfa[r1 * kGemmScaleChunk];
#pragma unroll
      for (uint32_t w = 0; w < kNWaves; ++w) {
        if (w < first_wave || w > last_wave) continue;
        float partial[kWaveN / 2];
#pragma unroll
        for (uint32_t i = 0; i < kWaveN / 2; ++i) fence_operand(partial[i]);
        wgmma_fence();
#pragma unroll
        for (uint32_t k = 0; k < kGemmBlockK / 32; ++k) {
          wgmma<kWaveN>(smem_desc(a_stage + k * 2), smem_desc(b_stage + (w * kWaveN * kGemmBlockK) / 16 + k * 2),
                        partial, k > 0);
        }
        wgmma_commit();
#pragma unroll
        for (uint32_t i = 0; i < kWaveN / 2; ++i) fence_operand(partial[i]);
        wgmma_wait_all();
        if (w == last_wave) release_stage<Cfg::kMulticast>(smem.empty[stage]);
        // Promotion: acc = fma(sa * sb, partial, acc), the scale product rounded first. For
        // SwiGLU, 8-column chunk i is gate (even i, scale row 0) or up (odd i, scale row 1).
        float* acc = accum + w * (kWaveN / 2);
#pragma unroll
        for (uint32_t i = 0; i < kWaveN / 8; ++i) {
          const float b = Cfg::kEpi == GemmEpilogue::SwigluFp8 ? sb[i % 2] : sb[w];
          const float s0 = sa0 * b;
          const float s1 = sa1 * b;
          acc[4 * i + 0] = __fmaf_rn(s0, partial[4 * i + 0], acc[4 * i + 0]);
          acc[4 * i + 1] = __fmaf_rn(s0, partial[4 * i + 1], acc[4 * i + 1]);
          acc[4 * i + 2] = __fmaf_rn(s1, partial[4 * i + 2], acc[4 * i + 2]);
          acc[4 * i + 3] = __fmaf_rn(s1, partial[4 * i + 3], acc[4 * i + 3]);
        }
      }
    } else {
      release_stage<Cfg::kMulticast>(smem.empty[stage]);
    }
    scales.advance();
    pipe.advance();
  }
  scales.end_tile();
}

// Accumulates the tile's K blocks (this CTA's slice of them under split-K) into accum (zeroed
// first) and releases every stage it consumed.
template <class Cfg>
__device__ __forceinline__ void run_mainloop(const KernelParams& p, const SharedStorage<Cfg>& smem,
                                             PipelineState<Cfg::kStages>& pipe, ScaleSlotState<Cfg::kStages>& scales,
                                             const MathTile& t, float (&accum)[Cfg::kBlockN / 2]) {
#pragma unroll
  for (uint32_t i = 0; i < Cfg::kBlockN / 2; ++i) accum[i] = 0.0f;
  if (t.group < 0) return;
  if constexpr (Cfg::kCanWiden) {
    if (t.wide) {
      run_mainloop_rows<Cfg, true>(p, smem, pipe, scales, t, accum);
      return;
    }
  }
  run_mainloop_rows<Cfg, false>(p, smem, pipe, scales, t, accum);
}

}  // namespace megamoe::cuda::sm90
