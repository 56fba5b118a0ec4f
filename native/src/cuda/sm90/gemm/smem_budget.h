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
// B scales staged with each pipeline stage: one per 128-column N-wave of the tile (at most 2).
constexpr uint32_t kGemmStageBScales = 2;

// Output tile bytes staged for the TMA store, 1024-byte aligned (128B swizzle atoms). Epilogues that
// write from registers (routed, fused) keep 2 KiB there for their tile lists instead, which leaves
// room for more pipeline stages.
constexpr uint32_t gemm_smem_d_bytes(uint32_t block_m, uint32_t block_n, bool tma_store = true) {
  return tma_store ? (block_m * block_n * 2 + 1023) / 1024 * 1024 : 2048;
}
// A tile + B tile + A scales per pipeline stage.
constexpr uint32_t gemm_smem_stage_bytes(uint32_t block_m, uint32_t block_n) {
  return block_m * kGemmBlockK + block_n * kGemmBlockK + block_m * 4;
}
constexpr uint32_t gemm_smem_fixed_bytes(uint32_t block_m, uint32_t block_n, bool tma_store = true) {
  // D tile, B scales and 2 barriers per stage (reserved for the maximum), the tile's row table
  // (gathered A rows), 1 KiB alignment slack.
  return gemm_smem_d_bytes(block_m, block_n, tma_store) + kGemmMaxStages * (kGemmStageBScales * 4 + 16) + block_m * 4 +
         1024;
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
