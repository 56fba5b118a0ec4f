// Shared-memory budget of the SM90 GEMM kernel: what one pipeline stage holds, what is fixed, and
// how many stages fit. The kernel's GemmConfig (config.cuh) sizes itself from these; plain C++ so
// CPU CI checks every variant fits (tests/native/test_gemm_variants.cpp).
#pragma once

#include <cstdint>

namespace megamoe::cuda::sm90 {

constexpr uint32_t kGemmBlockK = 128;
// Shared memory one CTA may use on SM90 (227 KiB).
constexpr uint32_t kGemmSmemCapacity = 232448;
// The largest K the CUDA GEMMs, routed plans and MoE layers accept, in 128-wide blocks (K <= 65536):
// the range the GPU tests cover (test_gpu_gemm.cpp runs K = 65536). The kernels stage scales per
// pipeline stage and need no limit of their own.
constexpr uint32_t kGemmMaxKBlocks = 512;
constexpr uint32_t kGemmMaxStages = 12;
// B scale rows a tile reads: one per 128-column N-wave (at most 2).
constexpr uint32_t kGemmStageBScales = 2;
// Consecutive K blocks of one tile whose A and B scales are staged together, as one slot of a ring of
// kStages slots: the scale tensors are row-major with K/128 floats per row, and 4 of them (16 bytes)
// are the narrowest box a TMA copy takes, so one copy per row brings 4 K blocks' scales (per K block,
// 32 producer lanes copying 4 bytes a row cost dense 2-3 %, contiguous 5 % and masked up to 19 %,
// bench/NOTES.md runs 89-90).
constexpr uint32_t kGemmScaleChunk = 4;
// One slot: the A scales [BM][4], then 128 bytes of B scales [2][4] (TMA destinations are 128-byte aligned).
constexpr uint32_t gemm_smem_sfa_slot_bytes(uint32_t block_m) { return block_m * kGemmScaleChunk * 4; }
constexpr uint32_t kGemmSmemSfbSlotBytes = 128;

// Output tile bytes staged for the TMA store, 1024-byte aligned (128B swizzle atoms). Epilogues that
// write from registers (routed, fused) keep 2 KiB there for their tile lists instead, which leaves
// room for more pipeline stages.
constexpr uint32_t gemm_smem_d_bytes(uint32_t block_m, uint32_t block_n, bool tma_store = true) {
  return tma_store ? (block_m * block_n * 2 + 1023) / 1024 * 1024 : 2048;
}
// A tile + B tile + one slot of scales per pipeline stage.
constexpr uint32_t gemm_smem_stage_bytes(uint32_t block_m, uint32_t block_n) {
  return block_m * kGemmBlockK + block_n * kGemmBlockK + gemm_smem_sfa_slot_bytes(block_m) + kGemmSmemSfbSlotBytes;
}
constexpr uint32_t gemm_smem_fixed_bytes(uint32_t block_m, uint32_t block_n, bool tma_store = true) {
  // D tile, 2 barriers per stage (reserved for the maximum), the tile's row table (gathered A rows),
  // 1 KiB alignment slack.
  return gemm_smem_d_bytes(block_m, block_n, tma_store) + kGemmMaxStages * 16 + block_m * 4 + 1024;
}
// Whether a launch stages its scales by TMA (else by cp.async from the producer's lanes, into the same
// slots): TMA needs row strides of whole 16 bytes (K/128 a multiple of 4) and 16-byte aligned tensors.
constexpr bool gemm_scales_by_tma(uint64_t k, uint64_t sfa_address, uint64_t sfb_address) {
  return (k / kGemmBlockK) % 4 == 0 && sfa_address % 16 == 0 && sfb_address % 16 == 0;
}
constexpr uint32_t gemm_num_stages(uint32_t block_m, uint32_t block_n, bool tma_store = true) {
  const uint32_t stages = (kGemmSmemCapacity - gemm_smem_fixed_bytes(block_m, block_n, tma_store)) /
                          gemm_smem_stage_bytes(block_m, block_n);
  return stages > kGemmMaxStages ? kGemmMaxStages : stages;
}
// A split-K CTA keeps its float32 partial tile in the pipeline stages it is done with (split_k.cuh);
// the SplitK variants store through the BF16 epilogue's D tile, hence tma_store.
constexpr bool gemm_split_scratch_fits(uint32_t block_m, uint32_t block_n, bool tma_store = true) {
  return uint64_t{block_m} * block_n * 4 <=
         uint64_t{gemm_num_stages(block_m, block_n, tma_store)} * (block_m + block_n) * kGemmBlockK;
}
constexpr uint32_t gemm_smem_bytes(uint32_t block_m, uint32_t block_n, bool tma_store = true) {
  return gemm_smem_fixed_bytes(block_m, block_n, tma_store) +
         gemm_num_stages(block_m, block_n, tma_store) * gemm_smem_stage_bytes(block_m, block_n);
}

}  // namespace megamoe::cuda::sm90
