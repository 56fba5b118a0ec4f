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

#include "cuda/sm90/gemm/schedule.h"
#include "cuda/sm90/gemm/smem_budget.h"
#include "cuda/sm90/gemm/variants.h"

namespace megamoe::cuda::sm90 {

struct GemmTile {
  uint32_t block_m;
  uint32_t block_n;
  uint32_t multicast = 1;
  uint32_t k_splits = 1;  // > 1: a GemmKind::SplitK variant, CTAs of a cluster sharing each tile's K (split_k.cuh)
};

// Clusters of `splits` CTAs (one per SM: the GEMM CTAs fill an SM) that can run at once. A cluster
// must sit in one GPC, and the GPCs of H100 / H200 SXM parts hold 14-18 SMs: ncu reported 30 active
// clusters of 4 on an H100 (bench/NOTES.md, run 47), so fewer than num_sms / splits for 4 and 8.
inline int64_t gemm_split_max_clusters(int32_t num_sms, uint32_t splits) {
  const int64_t sms = std::max(num_sms, 1);
  if (splits <= 2) return sms / 2;
  return splits == 4 ? sms * 30 / 132 : sms * 14 / 132;
}

// A GemmKind::SplitK tile on a cluster of `splits` CTAs (2, 4 or 8: cluster sizes every SM90 part
// supports): each rank owns block_n / 8 / splits column chunks, and the float32 partial tile must
// fit the pipeline stages it reuses.
inline bool gemm_split_allowed(uint32_t block_m, uint32_t block_n, uint32_t splits) {
  if (splits < 2 || splits > kGemmMaxKSplits || (splits & (splits - 1)) != 0) return false;
  return (block_n / 8) % splits == 0 && gemm_split_scratch_fits(block_m, block_n);
}

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
  const double splits = static_cast<double>(std::max(t.k_splits, 1u));
  const double m_blocks = std::ceil(m / t.block_m) * groups;
  const double n_blocks = std::ceil(n / t.block_n);
  // Split-K: every CTA runs one split of a tile, with k / splits of its K.
  const double tiles = m_blocks * n_blocks * splits;
  const double sms = static_cast<double>(std::max(p.num_sms, 1));
  const double waves = std::ceil(tiles / sms);
  // Tensor cores: 8192 FP8 FLOP per cycle per SM at best. A 64xNx32 wgmma also reads its A (2 KiB)
  // and B (N x 32 bytes) operands from shared memory at 128 B per cycle: small N is bound by that.
  const double wave_n = std::min(t.block_n, 128u);
  const double mma_cycles = (t.block_n / wave_n) * std::max(wave_n / 2.0, (2048.0 + wave_n * 32.0) / 128.0);
  const double k_steps = k / splits / 32.0;
  // Only 64-row slabs holding valid rows issue MMAs (per group: ceil(m / 64) slabs).
  const double slabs = std::ceil(m / 64.0) * groups * n_blocks * splits;
  double tile_cycles = (slabs / tiles) * k_steps * mma_cycles;
  // Epilogue: BF16 tile through shared memory (partly overlapped with the next tile's loads).
  tile_cycles += t.block_m * t.block_n * 2.0 / 16.0;
  // Multicast measured slower on H100 for dense/contiguous and within 2% elsewhere (bench/NOTES.md).
  const double compute = waves * tile_cycles * (t.multicast > 1 ? 1.05 : 1.0);
  // The wall measured on H100 (bench/NOTES.md): what each SM receives into shared memory, about
  // 32 B per cycle per SM whatever the tile (multicast does not reduce what an SM receives).
  const double panel_bytes = (static_cast<double>(t.block_m) + t.block_n) * k / splits;
  // Per wave: an SM's own rate, or the L2's ~3000 B per cycle shared by the wave's tiles, whichever
  // binds; a partial last wave has fewer tiles sharing it. (Charged over the whole launch instead,
  // the model ranked 1.3 waves of 128x256 tiles above 1.8 waves of 192x128 on dense m2048 n2816
  // k2048, which measured 34.1 against 30.1 us: bench/NOTES.md run 57.)
  const double full_waves = std::floor(tiles / sms), last_tiles = tiles - full_waves * sms;
  const double l2 = full_waves * std::max(panel_bytes / 32.0, sms * panel_bytes / 3000.0) +
                    (last_tiles > 0.0 ? std::max(panel_bytes / 32.0, last_tiles * panel_bytes / 3000.0) : 0.0);
  // HBM: the distinct bytes once (A rows actually present, B of every group, D), about 1700 B/cycle.
  const double a_bytes = m * groups * k;
  const double b_bytes = n * k * (p.kind == GemmKind::Dense ? 1.0 : groups);
  const double hbm = (a_bytes + b_bytes + m * groups * n * 2.0) / 1700.0;
  // Split-K reduction, after the mainloop: the float32 partial tile into shared memory (~64 B per
  // cycle), the peers' slices of it over distributed shared memory (assumed ~32 B per cycle), and a
  // fixed cost fitted to run 48's sweep (a cluster launch, two cluster barriers and the per-CTA
  // fixed time run 51 measured).
  double reduce = 0.0;
  if (splits > 1) {
    const double partial = static_cast<double>(t.block_m) * t.block_n * 4.0;
    reduce = partial / 64.0 + partial * (splits - 1.0) / splits / 32.0 + 9000.0;
  }
  // The slowest resource bounds the time; the others still cost a little (tie-breaker).
  return std::max({compute, l2, hbm}) + reduce + 0.1 * (compute + l2);
}

// A tile shape forced by tests and benchmarks (MEGAMOE_CUDA_GEMM_TILE="BMxBN", "BMxBNxC" or
// "BMxBNxCxS"), so that every instantiation is reachable. multicast 0: still chosen by the model;
// k_splits 0: chosen by the model, S >= 1: forced for dense problems where the tile allows it
// (even where it leaves K blocks to no CTA or needs more than one wave).
struct GemmTileOverride {
  uint32_t block_m = 0;
  uint32_t block_n = 0;
  uint32_t multicast = 0;
  uint32_t k_splits = 0;
  bool active() const { return block_m != 0; }
};

constexpr bool operator==(const GemmTileOverride& a, const GemmTileOverride& b) {
  return a.block_m == b.block_m && a.block_n == b.block_n && a.multicast == b.multicast && a.k_splits == b.k_splits;
}

// Shapes no plain variant has are ignored (an inactive override).
inline GemmTileOverride parse_gemm_tile_override(const char* text) {
  GemmTileOverride o;
  if (text == nullptr || *text == '\0') return o;
  unsigned bm = 0, bn = 0, mc = 0, splits = 0;
  const int fields = std::sscanf(text, "%ux%ux%ux%u", &bm, &bn, &mc, &splits);
  if (fields < 2) return o;
  for (const GemmVariant& v : kGemmVariants) {
    if (v.epilogue == GemmEpilogue::Bf16 && v.block_m == bm && v.block_n == bn) {
      o.block_m = bm;
      o.block_n = bn;
      if (fields >= 3 && (mc == 1 || mc == 2)) o.multicast = mc;
      if (fields == 4 && splits >= 1 && splits <= kGemmMaxKSplits) o.k_splits = splits;
      return o;
    }
  }
  return o;
}

inline GemmTileOverride gemm_tile_override_from_env() {
  return parse_gemm_tile_override(std::getenv("MEGAMOE_CUDA_GEMM_TILE"));
}

// The cheapest plain (BF16-epilogue) variant of p.kind by gemm_tile_cost, or the forced shape when
// the problem allows it (a forced multicast the problem or the tile does not allow falls back to the model's).
// Dense problems weigh the split-K variants too, but only where the best unsplit tile leaves at
// least half of the SMs idle: run 48 (bench/NOTES.md) measured a split cluster ~6-9 us slower than
// its streaming time, so splitting lost wherever the unsplit grid already filled the GPU
// (m128 n4096 k7168: 29.5 vs 21.5 us) and won where it did not (m64 n2048 k7168: 15.1 vs 18.6 us).
inline GemmTile choose_gemm_tile(const GemmProblem& p, const GemmTileOverride& forced = {}) {
  // A forced shape this layout does not instantiate (192 rows for contiguous) is ignored.
  const bool has_forced =
      forced.active() && gemm_tile_allowed(p.n, forced.block_n) &&
      gemm_variant_index({p.kind, GemmEpilogue::Bf16, forced.block_m, forced.block_n, 1}) >= 0;
  // A forced split (S = 1: none) is honoured where the forced tile can run it, else the model's applies.
  const bool dense = p.kind == GemmKind::Dense;
  const bool forced_splits =
      has_forced && forced.k_splits != 0 && dense &&
      (forced.k_splits == 1 || (forced.multicast != 2 && gemm_split_allowed(forced.block_m, forced.block_n, forced.k_splits)));
  const auto grid_tiles = [&](uint32_t block_m, uint32_t block_n) {
    return ceil_div<int64_t>(std::max<int64_t>(p.m, 1), block_m) * ceil_div<int64_t>(p.n, block_n);
  };
  GemmTile best{128, 128, 1};
  double best_cost = -1.0;
  const auto consider = [&](const GemmTile& t) {
    const double cost = gemm_tile_cost(p, t);
    // Ties go to the earlier (larger, no multicast, unsplit) configuration.
    if (best_cost < 0.0 || cost < best_cost * 0.999) {
      best = t;
      best_cost = cost;
    }
  };
  // Pass 0: unsplit variants of p.kind; pass 1: split-K variants (dense problems only).
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      if (!dense) break;
      if (!(forced_splits && forced.k_splits > 1) && best_cost >= 0.0 &&
          grid_tiles(best.block_m, best.block_n) * 2 > p.num_sms) {
        break;
      }
    }
    for (const GemmVariant& v : kGemmVariants) {
      const GemmKind kind = pass == 0 ? p.kind : GemmKind::SplitK;
      if (v.kind != kind || v.epilogue != GemmEpilogue::Bf16) continue;
      if (has_forced && (v.block_m != forced.block_m || v.block_n != forced.block_n)) continue;
      if (!gemm_tile_allowed(p.n, v.block_n) || !gemm_multicast_allowed(p.n, v.block_n, v.multicast)) continue;
      if (has_forced && forced.multicast != 0 && v.multicast != forced.multicast &&
          gemm_multicast_allowed(p.n, v.block_n, forced.multicast) &&
          gemm_variant_index({v.kind, v.epilogue, v.block_m, v.block_n, forced.multicast}) >= 0) {
        continue;
      }
      if (pass == 0) {
        if (!forced_splits || forced.k_splits == 1) consider({v.block_m, v.block_n, v.multicast, 1});
        continue;
      }
      const int64_t tiles = grid_tiles(v.block_m, v.block_n);
      for (uint32_t splits = 2; splits <= kGemmMaxKSplits; splits *= 2) {
        if (!gemm_split_allowed(v.block_m, v.block_n, splits)) continue;
        if (forced_splits && splits != forced.k_splits) continue;
        if (!forced_splits && (tiles > gemm_split_max_clusters(p.num_sms, splits) || splits * kGemmBlockK > p.k)) continue;
        consider({v.block_m, v.block_n, v.multicast, splits});
      }
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

// What runs a request: a variant and, for dense problems, its split-K.
struct GemmChoice {
  int variant = -1;  // index into kGemmVariants; -1 when none fits
  uint32_t k_splits = 1;
};

constexpr bool operator==(const GemmChoice& a, const GemmChoice& b) {
  return a.variant == b.variant && a.k_splits == b.k_splits;
}

// The variant that runs `r` and its split-K; variant -1 when none fits (N not a multiple of any
// instantiated BLOCK_N for this epilogue).
inline GemmChoice choose_gemm(const GemmRequest& r, const GemmTileOverride& forced = {}) {
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
    if (!gemm_tile_allowed(r.n, t.block_n)) return {};
    const GemmKind kind = t.k_splits > 1 ? GemmKind::SplitK : r.kind;
    return {gemm_variant_index({kind, GemmEpilogue::Bf16, t.block_m, t.block_n, t.multicast}), t.k_splits};
  }
  // Routed: the epilogue's variants (128-row tiles, no multicast). The model compares the plain
  // tiles as an offsets layout with the slots spread evenly; 256 columns win where it picks 256,
  // where expert specialization needs the two N-waves of a wide tile, or where the epilogue has no
  // narrower variant (SwiGLU: one 128-column quantization group per tile). The MoE combine always
  // takes 256 unless a tile is forced: each tile's counters and token sums cover twice the columns,
  // and the layer measured no slower with them (within the spread of identical runs), 2.5-4.5 %
  // faster at T <= 16 where the model picks 128 columns (bench/NOTES.md, run 71).
  problem.kind = GemmKind::Offsets;
  const bool prefer_wide = choose_gemm_tile(problem, forced).block_n >= 256 || r.expert_specialization ||
                           (r.epilogue == GemmEpilogue::CombineF32 && !forced.active());
  int wide = -1, narrow = -1;
  for (size_t i = 0; i < kNumGemmVariants; ++i) {
    const GemmVariant& v = kGemmVariants[i];
    if (v.kind != GemmKind::Routed || v.epilogue != r.epilogue || !gemm_tile_allowed(r.n, v.block_n)) continue;
    if (v.block_n == 256 && wide < 0) wide = static_cast<int>(i);
    if (v.block_n < 256 && narrow < 0) narrow = static_cast<int>(i);
  }
  if (wide >= 0 && (prefer_wide || narrow < 0)) return {wide, 1};
  return {narrow, 1};
}

}  // namespace megamoe::cuda::sm90
