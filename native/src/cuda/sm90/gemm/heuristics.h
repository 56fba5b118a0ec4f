// Which kernel variant (variants.h) runs a GEMM: a cost model over the plain layouts' tiles, fitted
// to H100 measurements (bench/NOTES.md, run 8), and the rules of the routed epilogues. Pure functions
// of the request and of an optional forced tile; plain C++ that CPU CI tests
// (tests/native/test_gemm_variants.cpp). dispatch.cu reads the override from the environment.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "cuda/sm90/gemm/variants.h"

namespace megamoe::cuda::sm90 {

struct GemmTile {
  uint32_t block_m;
  uint32_t block_n;
  uint32_t multicast = 1;
};

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

// A tile shape forced by tests and benchmarks (MEGAMOE_CUDA_GEMM_TILE="BMxBN" or "BMxBNxC"), so that
// every instantiation is reachable. multicast 0: still chosen by the model.
struct GemmTileOverride {
  uint32_t block_m = 0;
  uint32_t block_n = 0;
  uint32_t multicast = 0;
  bool active() const { return block_m != 0; }
};

constexpr bool operator==(const GemmTileOverride& a, const GemmTileOverride& b) {
  return a.block_m == b.block_m && a.block_n == b.block_n && a.multicast == b.multicast;
}

// Shapes no plain variant has are ignored (an inactive override).
inline GemmTileOverride parse_gemm_tile_override(const char* text) {
  GemmTileOverride o;
  if (text == nullptr || *text == '\0') return o;
  unsigned bm = 0, bn = 0, mc = 0;
  const int fields = std::sscanf(text, "%ux%ux%u", &bm, &bn, &mc);
  if (fields < 2) return o;
  for (const GemmVariant& v : kGemmVariants) {
    if (v.epilogue == GemmEpilogue::Bf16 && v.block_m == bm && v.block_n == bn) {
      o.block_m = bm;
      o.block_n = bn;
      if (fields == 3 && (mc == 1 || mc == 2)) o.multicast = mc;
      return o;
    }
  }
  return o;
}

inline GemmTileOverride gemm_tile_override_from_env() {
  return parse_gemm_tile_override(std::getenv("MEGAMOE_CUDA_GEMM_TILE"));
}

// The cheapest plain (BF16-epilogue) variant of p.kind by gemm_tile_cost, or the forced shape when
// the problem allows it (a forced multicast the problem does not allow falls back to the model's).
inline GemmTile choose_gemm_tile(const GemmProblem& p, const GemmTileOverride& forced = {}) {
  const bool has_forced = forced.active() && gemm_tile_allowed(p.n, forced.block_n);
  GemmTile best{128, 128, 1};
  double best_cost = -1.0;
  for (const GemmVariant& v : kGemmVariants) {
    if (v.kind != p.kind || v.epilogue != GemmEpilogue::Bf16) continue;
    if (has_forced && (v.block_m != forced.block_m || v.block_n != forced.block_n)) continue;
    if (!gemm_tile_allowed(p.n, v.block_n) || !gemm_multicast_allowed(p.n, v.block_n, v.multicast)) continue;
    if (has_forced && forced.multicast != 0 && v.multicast != forced.multicast &&
        gemm_multicast_allowed(p.n, v.block_n, forced.multicast)) {
      continue;
    }
    const GemmTile t{v.block_m, v.block_n, v.multicast};
    const double cost = gemm_tile_cost(p, t);
    // Ties go to the earlier (larger, no multicast) configuration.
    if (best_cost < 0.0 || cost < best_cost * 0.999) {
      best = t;
      best_cost = cost;
    }
  }
  return best;
}

// One GEMM launch as the dispatcher sees it.
struct GemmRequest {
  GemmKind kind = GemmKind::Dense;
  GemmEpilogue epilogue = GemmEpilogue::Bf16;
  int64_t rows = 0;        // rows of the 2D views of A / D (routed: the most slots a batch can hold)
  int64_t max_m = 0;       // masked: rows per group
  int64_t expected_m = 0;  // masked: typical rows per group (0 = unknown)
  int64_t n = 0;
  int64_t k = 0;
  int64_t groups = 1;
  bool expert_specialization = false;  // routed: 64-row "wide" tiles for small experts
  int32_t num_sms = 132;
};

constexpr bool operator==(const GemmRequest& a, const GemmRequest& b) {
  return a.kind == b.kind && a.epilogue == b.epilogue && a.rows == b.rows && a.max_m == b.max_m &&
         a.expected_m == b.expected_m && a.n == b.n && a.k == b.k && a.groups == b.groups &&
         a.expert_specialization == b.expert_specialization && a.num_sms == b.num_sms;
}

// The variant that runs `r`, as an index into kGemmVariants; -1 when none fits (N not a multiple of
// any instantiated BLOCK_N for this epilogue).
inline int choose_gemm_variant(const GemmRequest& r, const GemmTileOverride& forced = {}) {
  GemmProblem problem;
  problem.kind = r.kind;
  problem.n = r.n;
  problem.k = r.k;
  problem.num_sms = r.num_sms;
  problem.groups = r.kind == GemmKind::Dense ? 1 : r.groups;
  if (r.kind == GemmKind::Masked) {
    problem.m = r.expected_m > 0 ? std::min<int64_t>(r.expected_m, r.max_m) : r.max_m;
  } else {
    problem.m = (r.rows + problem.groups - 1) / std::max<int64_t>(problem.groups, 1);
  }
  if (r.kind != GemmKind::Routed) {
    const GemmTile t = choose_gemm_tile(problem, forced);
    if (!gemm_tile_allowed(r.n, t.block_n)) return -1;
    return gemm_variant_index({r.kind, GemmEpilogue::Bf16, t.block_m, t.block_n, t.multicast});
  }
  // Routed: the epilogue's variants (128-row tiles, no multicast). The model compares the plain
  // tiles as an offsets layout with the slots spread evenly; 256 columns win where it picks 256,
  // where expert specialization needs the two N-waves of a wide tile, or where the epilogue has no
  // narrower variant (SwiGLU: one 128-column quantization group per tile).
  problem.kind = GemmKind::Offsets;
  const bool prefer_wide = choose_gemm_tile(problem, forced).block_n >= 256 || r.expert_specialization;
  int wide = -1, narrow = -1;
  for (size_t i = 0; i < kNumGemmVariants; ++i) {
    const GemmVariant& v = kGemmVariants[i];
    if (v.kind != GemmKind::Routed || v.epilogue != r.epilogue || !gemm_tile_allowed(r.n, v.block_n)) continue;
    if (v.block_n == 256 && wide < 0) wide = static_cast<int>(i);
    if (v.block_n < 256 && narrow < 0) narrow = static_cast<int>(i);
  }
  if (wide >= 0 && (prefer_wide || narrow < 0)) return wide;
  return narrow;
}

}  // namespace megamoe::cuda::sm90
