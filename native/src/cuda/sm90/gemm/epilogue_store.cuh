// The BF16 epilogue of the plain layouts (GemmEpilogue::Bf16): accumulators -> BF16 via stmatrix
// into TMA-swizzled shared memory -> one TMA store per atom; tiles that end inside a masked/offsets
// segment are written by predicated 16-byte stores instead (rows past masked_m stay untouched,
// neighbouring experts' rows are not clobbered).
#pragma once

#include <cuda.h>

#include <cute/arch/copy_sm90.hpp>
#include <cute/arch/copy_sm90_tma.hpp>
#include <cutlass/arch/barrier.h>

#include <cstdint>

#include "cuda/sm90/gemm/config.cuh"
#include "cuda/sm90/gemm/mainloop.cuh"
#include "cuda/sm90/gemm/params.h"
#include "cuda/sm90/ptx.cuh"

namespace megamoe::cuda::sm90 {

template <class Cfg>
__device__ __forceinline__ void epilogue_store_bf16(const CUtensorMap& tmap_d, const KernelParams& p, const TileWork& work,
                                                    const MathTile& t, float (&accum)[Cfg::kBlockN / 2],
                                                    const SharedStorage<Cfg>& smem, uint32_t warp, uint32_t lane) {
  constexpr uint32_t BM = Cfg::kBlockM, BN = Cfg::kBlockN;
  constexpr uint32_t kSwizzleD = Cfg::kSwizzleD, kAtomN = Cfg::kAtomN, kAtoms = Cfg::kAtoms;
  constexpr uint32_t kChunksPerAtomRow = kSwizzleD / 16;
  // Rows that must read as zero: contiguous rows of another (or no) expert.
  if constexpr (Cfg::kKind == GemmKind::Contiguous) {
    const int32_t* m_indices = static_cast<const int32_t*>(p.layout.groups_data);
    const uint32_t row0 = work.row_begin + t.r0, row1 = row0 + 8;
    const bool ok0 = t.group >= 0 && row0 < p.layout.rows &&
                     contiguous_row_group(__ldg(m_indices + row0), p.layout.groups) == t.group;
    const bool ok1 = t.group >= 0 && row1 < p.layout.rows &&
                     contiguous_row_group(__ldg(m_indices + row1), p.layout.groups) == t.group;
#pragma unroll
    for (uint32_t i = 0; i < BN / 8; ++i) {
      if (!ok0) accum[4 * i + 0] = 0.0f, accum[4 * i + 1] = 0.0f;
      if (!ok1) accum[4 * i + 2] = 0.0f, accum[4 * i + 3] = 0.0f;
    }
  }

  // The previous tile's TMA store must have read smem.d before it is overwritten.
  if (threadIdx.x < kAtoms) cute::tma_store_wait<0>();
  cutlass::arch::NamedBarrier::sync(Cfg::kMathThreads, Cfg::kEpilogueBarrier);

  // Registers -> smem.d: atoms of [BM rows][kSwizzleD bytes], 16-byte chunks swizzled as TMA's
  // SWIZZLE_<kSwizzleD>B expects (chunk ^= (byte offset >> 7) % chunks per row).
  const uint32_t d_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem.d));
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
  if constexpr (Cfg::kKind == GemmKind::Masked || Cfg::kKind == GemmKind::Offsets) {
    whole_tile = work.row_begin + BM <= work.row_end;
  }
  if (whole_tile) {
    // TMA store (it clips rows >= rows of the map).
    cute::tma_store_fence();
    cutlass::arch::NamedBarrier::sync(Cfg::kMathThreads, Cfg::kEpilogueBarrier);
    if (threadIdx.x < kAtoms) {
      cute::SM90_TMA_STORE_2D::copy(&tmap_d, smem.d + threadIdx.x * BM * kSwizzleD,
                                    static_cast<int32_t>(work.n_block * BN + threadIdx.x * kAtomN),
                                    static_cast<int32_t>(work.row_begin));
      cute::tma_store_arrive();
    }
  } else {
    // The tile ends inside its segment: write only rows [row_begin, row_end).
    cutlass::arch::NamedBarrier::sync(Cfg::kMathThreads, Cfg::kEpilogueBarrier);
    constexpr uint32_t kChunksPerRow = BN / 8;
    for (uint32_t idx = threadIdx.x; idx < BM * kChunksPerRow; idx += Cfg::kMathThreads) {
      const uint32_t row = idx / kChunksPerRow;
      const uint32_t c = idx % kChunksPerRow;
      const uint32_t grow = work.row_begin + row;
      if (grow >= work.row_end) continue;
      uint32_t off = row * kSwizzleD + (c % kChunksPerAtomRow) * 16;
      off ^= ((off >> 7) % kChunksPerAtomRow) << 4;
      const uint4 v = *reinterpret_cast<const uint4*>(smem.d + (c / kChunksPerAtomRow) * BM * kSwizzleD + off);
      *reinterpret_cast<uint4*>(p.op.d + static_cast<uint64_t>(grow) * p.layout.n + work.n_block * BN + c * 8) = v;
    }
  }
}

// After the last tile: the outstanding TMA stores must finish reading shared memory before the CTA exits.
template <class Cfg>
__device__ __forceinline__ void epilogue_store_drain() {
  if (threadIdx.x < Cfg::kAtoms) cute::tma_store_wait<0>();
}

}  // namespace megamoe::cuda::sm90
