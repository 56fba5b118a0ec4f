// Tile configuration of the SM90 block-scaled GEMM kernels, chosen from the problem shape and the
// SM count. Host-only (also compiled in CPU CI, tests/native/test_gemm_schedule.cpp); the kernels
// use the constexpr pieces (stages, shared memory) at compile time.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace megamoe {

// Routed: rows are the slots of a batch grouped by expert on the device (core/gemm_schedule.h).
enum class GemmKind : int32_t { Dense = 0, Contiguous = 1, Masked = 2, Offsets = 3, Routed = 4 };

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
constexpr uint32_t gemm_smem_bytes(uint32_t block_m, uint32_t block_n, bool tma_store = true) {
  return gemm_smem_fixed_bytes(block_m, block_n, tma_store) +
         gemm_num_stages(block_m, block_n, tma_store) * gemm_smem_stage_bytes(block_m, block_n);
}

struct GemmTile {
  uint32_t block_m;
  uint32_t block_n;
  uint32_t multicast = 1;  // CTAs of a cluster sharing the A tile through TMA multicast (1 or 2)
};

// Every tile shape the CUDA backend instantiates, each with multicast 1 and 2
// (src/cuda/gemm_<layout>_bm<BM>.cu and gemm_dispatch.cu list the same set).
constexpr GemmTile kGemmTiles[] = {{128, 256, 1}, {128, 128, 1}, {128, 64, 1}, {128, 32, 1},
                                   {64, 128, 1},  {64, 64, 1},   {64, 32, 1}};
constexpr int kNumGemmTiles = static_cast<int>(sizeof(kGemmTiles) / sizeof(kGemmTiles[0]));

// Multicast pairs two CTAs on neighbouring n-blocks of one m-block: it needs an even number of
// n-blocks (then every layout's tile count per segment is even).
inline bool gemm_multicast_allowed(int64_t n, uint32_t block_n, uint32_t multicast) {
  return multicast == 1 || (multicast == 2 && (n / block_n) % 2 == 0);
}

// Tiles are whole: BLOCK_N = 256 needs N % 256 == 0.
inline bool gemm_tile_allowed(int64_t n, uint32_t block_n) { return n % block_n == 0; }

struct GemmProblem {
  GemmKind kind = GemmKind::Dense;
  int64_t m = 0;       // rows per group: M (dense, contiguous, offsets: total rows / groups), expected_m (masked)
  int64_t n = 0;
  int64_t k = 0;
  int64_t groups = 1;  // number of groups the rows are spread over (1 for dense)
  int32_t num_sms = 132;
};

// Modelled time of a tile configuration, in SM cycles (only comparisons matter).
inline double gemm_tile_cost(const GemmProblem& p, GemmTile t) {
  const double m = static_cast<double>(std::max<int64_t>(p.m, 1));
  const double groups = static_cast<double>(std::max<int64_t>(p.groups, 1));
  const double n = static_cast<double>(p.n), k = static_cast<double>(p.k);
  const double m_blocks = std::ceil(m / t.block_m) * groups;
  const double n_blocks = std::ceil(n / t.block_n);
  const double tiles = m_blocks * n_blocks;
  const double sms = static_cast<double>(std::max(p.num_sms, 1));
  const double waves = std::ceil(tiles / sms);
  // Tensor cores: 8192 FP8 FLOP per cycle per SM at best. A 64xNx32 wgmma also reads its A (2 KiB)
  // and B (N x 32 bytes) operands from shared memory at 128 B per cycle: small N is bound by that.
  const double wave_n = std::min(t.block_n, 128u);
  const double mma_cycles = (t.block_n / wave_n) * std::max(wave_n / 2.0, (2048.0 + wave_n * 32.0) / 128.0);
  const double k_steps = k / 32.0;
  // Only 64-row slabs holding valid rows issue MMAs (per group: ceil(m / 64) slabs).
  const double slabs = std::ceil(m / 64.0) * groups * n_blocks;
  double tile_cycles = (slabs / tiles) * k_steps * mma_cycles;
  // Epilogue: BF16 tile through shared memory (partly overlapped with the next tile's loads).
  tile_cycles += t.block_m * t.block_n * 2.0 / 16.0;
  // Multicast measured slower on H100 for dense/contiguous and within 2% elsewhere (bench/NOTES.md).
  const double compute = waves * tile_cycles * (t.multicast > 1 ? 1.05 : 1.0);
  // The wall measured on H100 (bench/NOTES.md): what each SM receives into shared memory, about
  // 32 B per cycle per SM whatever the tile (multicast does not reduce what an SM receives).
  const double panel_bytes = (static_cast<double>(t.block_m) + t.block_n) * k;
  const double l2 = std::max(waves * panel_bytes / 32.0, tiles * panel_bytes / 3000.0);
  // HBM: the distinct bytes once (A rows actually present, B of every group, D), about 1700 B/cycle.
  const double a_bytes = m * groups * k;
  const double b_bytes = n * k * (p.kind == GemmKind::Dense ? 1.0 : groups);
  const double hbm = (a_bytes + b_bytes + m * groups * n * 2.0) / 1700.0;
  // The slowest resource bounds the time; the others still cost a little (tie-breaker).
  return std::max({compute, l2, hbm}) + 0.1 * (compute + l2);
}

// MEGAMOE_CUDA_GEMM_TILE="BMxBN" forces a tile shape (multicast still chosen), "BMxBNxC" also the
// multicast C (1 or 2; ignored where not allowed), so tests and benchmarks reach every instantiation.
inline bool gemm_tile_override(GemmTile& tile, uint32_t& multicast) {
  multicast = 0;
  const char* env = std::getenv("MEGAMOE_CUDA_GEMM_TILE");
  if (env == nullptr || *env == '\0') return false;
  unsigned bm = 0, bn = 0, mc = 0;
  const int fields = std::sscanf(env, "%ux%ux%u", &bm, &bn, &mc);
  if (fields < 2) return false;
  for (const GemmTile& t : kGemmTiles) {
    if (t.block_m == bm && t.block_n == bn) {
      tile = t;
      if (fields == 3 && (mc == 1 || mc == 2)) multicast = mc;
      return true;
    }
  }
  return false;
}

inline GemmTile choose_gemm_tile(const GemmProblem& p) {
  GemmTile forced{};
  uint32_t forced_multicast = 0;
  // A forced shape the problem does not allow (N % 256 for 128x256) is ignored.
  const bool has_forced = gemm_tile_override(forced, forced_multicast) && gemm_tile_allowed(p.n, forced.block_n);
  GemmTile best{128, 128, 1};
  double best_cost = -1.0;
  for (const GemmTile& shape : kGemmTiles) {
    if (has_forced && (shape.block_m != forced.block_m || shape.block_n != forced.block_n)) continue;
    if (!gemm_tile_allowed(p.n, shape.block_n)) continue;
    for (uint32_t multicast = 1; multicast <= 2; ++multicast) {
      if (!gemm_multicast_allowed(p.n, shape.block_n, multicast)) continue;
      if (has_forced && forced_multicast != 0 && multicast != forced_multicast &&
          gemm_multicast_allowed(p.n, shape.block_n, forced_multicast)) {
        continue;
      }
      const GemmTile t{shape.block_m, shape.block_n, multicast};
      const double cost = gemm_tile_cost(p, t);
      // Ties go to the earlier (larger, no multicast) configuration.
      if (best_cost < 0.0 || cost < best_cost * 0.999) {
        best = t;
        best_cost = cost;
      }
    }
  }
  return best;
}

}  // namespace megamoe
