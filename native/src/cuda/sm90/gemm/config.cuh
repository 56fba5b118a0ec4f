// Compile-time configuration of one kernel variant (threads, registers, stages, epilogue layout),
// the carve-up of its shared memory, and the producer/consumer pipeline state the warp roles share.
#pragma once

#include <cutlass/arch/barrier.h>

#include <cstdint>

#include "cuda/sm90/gemm/smem_budget.h"
#include "cuda/sm90/gemm/variants.h"

namespace megamoe::cuda::sm90 {

template <GemmKind kKind_, uint32_t BM, uint32_t BN, uint32_t kMulticast_, GemmEpilogue kEpi_>
struct GemmConfig {
  static constexpr GemmKind kKind = kKind_;
  static constexpr GemmEpilogue kEpi = kEpi_;
  static constexpr uint32_t kBlockM = BM;
  static constexpr uint32_t kBlockN = BN;
  static constexpr uint32_t kMulticast = kMulticast_;
  static constexpr bool kTmaStore = epilogue_tma_store(kEpi);
  static constexpr uint32_t kStages = gemm_num_stages(BM, BN, kTmaStore);
  static constexpr uint32_t kMathThreads = BM * 2;  // one warpgroup per 64 rows
  static constexpr uint32_t kMathWarps = kMathThreads / 32;
  static constexpr uint32_t kThreads = kMathThreads + 128;
  static constexpr uint32_t kSmemBytes = gemm_smem_bytes(BM, BN, kTmaStore);
  static constexpr uint32_t kBytesA = BM * kGemmBlockK;
  static constexpr uint32_t kBytesB = BN * kGemmBlockK;
  static constexpr uint32_t kSwizzleD = BN * 2 >= 128 ? 128 : BN * 2;  // bytes per row of a D atom
  static constexpr uint32_t kAtomN = kSwizzleD / 2;                     // columns per D atom / TMA store
  static constexpr uint32_t kAtoms = BN / kAtomN;
  // BLOCK_N = 256 runs as two N-waves of 128 columns per k-block (one 64x128 wgmma chain and
  // promotion each), so the float32 partial stays at 64 registers next to the 128 accumulators.
  static constexpr uint32_t kWaveN = BN > 128 ? 128 : BN;
  static constexpr uint32_t kNWaves = BN / kWaveN;
  static constexpr bool kGather = epilogue_gathers_a(kEpi);
  // Registers per thread after setmaxnreg, within the 64K register file: the gathering producer
  // computes row addresses in four warps and gets more (2 x 128 x 224 + 128 x 56); the 192-row tile's
  // three math warpgroups hold a 64-register partial and 64 accumulators each (138 registers in the
  // mainloop's SASS), which leaves the producer its 40 (3 x 128 x 152 + 128 x 40; with 32 it spilled
  // inside its loop and the tile ran at half speed, bench/NOTES.md runs 53-55).
  static constexpr uint32_t kProducerRegisters = kGather ? 56 : 40;
  static constexpr uint32_t kMathRegisters = kGather ? 224 : (BM == 192 ? 152 : (BM == 128 ? 232 : 240));
  // K blocks per unrolled step of the mainloop (DeepGEMM's 8): fewer bookkeeping instructions
  // between one block's promotion and the next block's wgmma, dense -5.5 % (bench/NOTES.md, run 83).
  // Unrolled, the 192-row tiles spilled (8 -> 72 bytes), so they keep the rolled loop they were
  // measured with.
  static constexpr uint32_t kMainloopUnroll = BM == 192 ? 1 : 8;
  // The mainloop tests once per tile, not per K block, whether its warpgroup has rows in the tile:
  // a branch-free K-block body lets ptxas schedule across the unrolled blocks (dense -2.4 %, run 85).
  // The masked, offsets and routed kernels spilled up to 660 bytes that way, and up to 708 with no
  // test at all (every warpgroup computing every tile, run 97), so they test inside.
  static constexpr bool kActiveTestOutsideLoop = kKind == GemmKind::Dense || kKind == GemmKind::Contiguous;
  // Wide (64-row) tiles put one N-wave on each math warpgroup.
  static constexpr bool kCanWiden = kKind == GemmKind::Routed && BM == 128 && kNWaves == 2;
  // Named barrier of the math warpgroups in the epilogues (id 0 is __syncthreads).
  static constexpr uint32_t kEpilogueBarrier = 1;

  static_assert(gemm_variant_valid(GemmVariant{kKind, kEpi, BM, BN, kMulticast}), "not a valid kernel variant");
  static_assert(kStages >= 3, "too few pipeline stages");
  static_assert(kMathThreads * kMathRegisters + 128 * kProducerRegisters <= 65536, "registers over the register file");
  static_assert(kNWaves <= kGemmStageBScales, "one staged B scale per N-wave");
  static_assert(kGemmStageBScales * kGemmScaleChunk * 4 <= kGemmSmemSfbSlotBytes, "B scales over their slot");
};

using Barrier = cutlass::arch::ClusterTransactionBarrier;

// The dynamic shared memory of one CTA, 1024-byte aligned for the 128B swizzle (gemm_smem_bytes
// reserves the slack): [D tile | A stages | B stages | A scale slots | B scale slots | full | empty | rows].
template <class Cfg>
struct SharedStorage {
  static constexpr uint32_t kSfaSlotFloats = gemm_smem_sfa_slot_bytes(Cfg::kBlockM) / 4;
  static constexpr uint32_t kSfbSlotFloats = kGemmSmemSfbSlotBytes / 4;
  uint8_t* d;
  uint8_t* a;
  uint8_t* b;
  float* sfa;      // [kStages][BM][kGemmScaleChunk]: scale slots (ScaleSlotState), row-major like the tensor
  float* sfb;      // [kStages][kSfbSlotFloats]: N-wave w's scales at [w * kGemmScaleChunk, ...)
  Barrier* full;   // [kStages]
  Barrier* empty;  // [kStages]
  int32_t* rows;   // the producer warps' tables of the current tile's A rows (gathering epilogues), 32 per warp

  __device__ explicit SharedStorage(uint8_t* raw) {
    const uint32_t raw_addr = static_cast<uint32_t>(__cvta_generic_to_shared(raw));
    d = raw + ((1024u - (raw_addr & 1023u)) & 1023u);
    a = d + gemm_smem_d_bytes(Cfg::kBlockM, Cfg::kBlockN, Cfg::kTmaStore);
    b = a + Cfg::kStages * Cfg::kBytesA;
    sfa = reinterpret_cast<float*>(b + Cfg::kStages * Cfg::kBytesB);
    sfb = sfa + Cfg::kStages * kSfaSlotFloats;
    full = reinterpret_cast<Barrier*>(sfb + Cfg::kStages * kSfbSlotFloats);
    empty = full + Cfg::kStages;
    rows = reinterpret_cast<int32_t*>(empty + Cfg::kStages);
  }
};

// Position in the ring of kStages stages; producer and math warps advance their own copies in
// lockstep (every K block of every tile both touch).
template <uint32_t kStages>
struct PipelineState {
  uint32_t stage = 0;
  uint32_t phase = 0;
  __device__ __forceinline__ void advance() {
    stage = stage + 1 == kStages ? 0 : stage + 1;
    phase ^= stage == 0 ? 1u : 0u;
  }
};

// Position in the ring of scale slots: the scales of the K blocks [4c, 4c + 4) a tile reads share one
// slot of the ring, at their place kb % 4 (TMA boxes start at a multiple of 4 blocks: their inner
// coordinate must be 16-byte aligned, and split-K ranks begin anywhere), copied with the first of
// them the tile reads. The ring has kStages slots, so a slot is refilled no earlier than kStages K
// blocks after the last block that read it, which every reader has released by then (each slot holds
// at least one block). Producer and math warps advance their own copies alike: at the start of each
// tile they load, per K block, and at its end.
template <uint32_t kSlots>
struct ScaleSlotState {
  uint32_t slot = 0;
  uint32_t block = 0;  // place of the current K block in its slot: kb % kGemmScaleChunk
  __device__ __forceinline__ void next_slot() {
    block = 0;
    slot = slot + 1 == kSlots ? 0 : slot + 1;
  }
  __device__ __forceinline__ void begin_tile(uint32_t first_kb) { block = first_kb % kGemmScaleChunk; }
  __device__ __forceinline__ void advance() {
    if (++block == kGemmScaleChunk) next_slot();
  }
  __device__ __forceinline__ void end_tile() {
    if (block != 0) next_slot();
  }
};

// A math thread is done with a stage: it arrives on the empty barrier of every CTA whose producer
// writes into this stage. Every thread arrives for itself so that its own reads of the stage (its
// A scales) are ordered before the refill by its own release; one arrival per warp after
// __syncwarp() is also correct under the PTX memory model, but compute-sanitizer's racecheck
// cannot follow that ordering and reports the refill as a race.
template <uint32_t kMulticast>
__device__ __forceinline__ void release_stage(Barrier& bar) {
  if constexpr (kMulticast == 1) {
    bar.arrive();
  } else {
#pragma unroll
    for (uint32_t c = 0; c < kMulticast; ++c) bar.arrive(c, 1u);
  }
}

}  // namespace megamoe::cuda::sm90
