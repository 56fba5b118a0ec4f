// CPU tests of the SM90 GEMM variant table (cuda/sm90/gemm/variants.h), its shared-memory budget
// (smem_budget.h) and the variant choice (heuristics.h): what the CUDA build instantiates and
// dispatches is decided here, without nvcc.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <set>
#include <tuple>
#include <utility>

#include "cuda/sm90/gemm/heuristics.h"
#include "cuda/sm90/gemm/smem_budget.h"
#include "cuda/sm90/gemm/variants.h"

namespace {

namespace sm90 = megamoe::cuda::sm90;
using sm90::GemmEpilogue;
using sm90::GemmKind;
using sm90::GemmVariant;

// The variant index of a request's choice (-1 when none fits).
int choose_variant_index(const sm90::GemmRequest& r, const sm90::GemmTileOverride& forced = {}) {
  return sm90::choose_gemm(r, forced).variant;
}

const GemmVariant& variant_at(int index) { return sm90::kGemmVariants.at(static_cast<size_t>(index)); }

TEST(GemmVariants, TableIsTheCrossProductOfItsRows) {
  // Plain layouts: 7 tile shapes x multicast {1, 2} each; split-K: the 7 shapes single-CTA-A;
  // routed: 2 + 1 + 2 single-CTA variants; the 192x128 tile for dense, masked and offsets.
  EXPECT_EQ(sm90::kNumGemmVariants, 4u * 7u * 2u + 7u + 5u + 3u);
  std::set<std::tuple<int, int, uint32_t, uint32_t, uint32_t>> seen;
  for (const GemmVariant& v : sm90::kGemmVariants) {
    EXPECT_TRUE(sm90::gemm_variant_valid(v));
    EXPECT_TRUE(seen.emplace(static_cast<int>(v.kind), static_cast<int>(v.epilogue), v.block_m, v.block_n, v.multicast).second);
    EXPECT_EQ(v.kind == GemmKind::Routed, v.epilogue != GemmEpilogue::Bf16);
    if (v.kind == GemmKind::SplitK) {
      EXPECT_EQ(v.multicast, 1u);
    }
  }
  for (GemmKind kind : {GemmKind::Dense, GemmKind::Contiguous, GemmKind::Masked, GemmKind::Offsets}) {
    for (auto [bm, bn] : {std::pair<uint32_t, uint32_t>{128, 256}, {128, 128}, {128, 64}, {128, 32}, {64, 128}, {64, 64}, {64, 32}}) {
      for (uint32_t mc : {1u, 2u}) EXPECT_GE(sm90::gemm_variant_index({kind, GemmEpilogue::Bf16, bm, bn, mc}), 0);
    }
  }
  EXPECT_GE(sm90::gemm_variant_index({GemmKind::Routed, GemmEpilogue::SwigluFp8, 128, 256, 1}), 0);
  EXPECT_LT(sm90::gemm_variant_index({GemmKind::Routed, GemmEpilogue::SwigluFp8, 128, 128, 1}), 0);
  EXPECT_LT(sm90::gemm_variant_index({GemmKind::Dense, GemmEpilogue::Bf16, 256, 128, 1}), 0);
  for (GemmKind kind : {GemmKind::Dense, GemmKind::Masked, GemmKind::Offsets}) {
    EXPECT_GE(sm90::gemm_variant_index({kind, GemmEpilogue::Bf16, 192, 128, 1}), 0);
  }
  EXPECT_LT(sm90::gemm_variant_index({GemmKind::Contiguous, GemmEpilogue::Bf16, 192, 128, 1}), 0);
}

TEST(GemmVariants, ValidityRules) {
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Dense, GemmEpilogue::Bf16, 96, 128, 1}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Dense, GemmEpilogue::Bf16, 128, 96, 1}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Dense, GemmEpilogue::Bf16, 128, 128, 4}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Routed, GemmEpilogue::Bf16, 128, 128, 1}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Dense, GemmEpilogue::RoutedBf16, 128, 128, 1}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::SplitK, GemmEpilogue::Bf16, 128, 128, 2}));
  EXPECT_TRUE(sm90::gemm_variant_valid({GemmKind::SplitK, GemmEpilogue::Bf16, 128, 128, 1}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Routed, GemmEpilogue::CombineF32, 64, 128, 1}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Routed, GemmEpilogue::CombineF32, 128, 128, 2}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Routed, GemmEpilogue::SwigluFp8, 128, 128, 1}));
  EXPECT_TRUE(sm90::gemm_variant_valid({GemmKind::Routed, GemmEpilogue::SwigluFp8, 128, 256, 1}));
  // 192 rows: three math warpgroups of one N-wave each, never with contiguous zeroing or clusters.
  EXPECT_TRUE(sm90::gemm_variant_valid({GemmKind::Masked, GemmEpilogue::Bf16, 192, 128, 1}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Contiguous, GemmEpilogue::Bf16, 192, 128, 1}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Dense, GemmEpilogue::Bf16, 192, 256, 1}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Dense, GemmEpilogue::Bf16, 192, 128, 2}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::SplitK, GemmEpilogue::Bf16, 192, 128, 1}));
  EXPECT_FALSE(sm90::gemm_variant_valid({GemmKind::Routed, GemmEpilogue::CombineF32, 192, 128, 1}));
}

TEST(GemmVariants, EveryVariantFitsSharedMemory) {
  for (const GemmVariant& v : sm90::kGemmVariants) {
    const bool tma_store = sm90::epilogue_tma_store(v.epilogue);
    EXPECT_GE(sm90::gemm_num_stages(v.block_m, v.block_n, tma_store), 3u) << v.block_m << "x" << v.block_n;
    EXPECT_LE(sm90::gemm_smem_bytes(v.block_m, v.block_n, tma_store), sm90::kGemmSmemCapacity);
  }
  // Epilogues that write from registers trade the D staging for pipeline depth.
  EXPECT_GT(sm90::gemm_num_stages(128, 256, false), sm90::gemm_num_stages(128, 256, true));
  // The scale slots (4 K blocks' A scales, 128 bytes of B scales) keep the TMA's 128-byte alignment.
  for (uint32_t bm : {64u, 128u, 192u}) EXPECT_EQ(sm90::gemm_smem_sfa_slot_bytes(bm) % 128, 0u) << bm;
}

// Scales go by TMA where a row of the [rows, K/128] tensors is whole 16-byte units and both tensors
// are 16-byte aligned; elsewhere the producer's lanes copy them (the GPU tests run both: K = 640 and 7168).
TEST(GemmVariants, ScalesByTmaNeedWhole16ByteRows) {
  EXPECT_TRUE(sm90::gemm_scales_by_tma(512, 0x1000, 0x2000));
  EXPECT_TRUE(sm90::gemm_scales_by_tma(7168, 0x1010, 0x20f0));
  EXPECT_TRUE(sm90::gemm_scales_by_tma(65536, 0, 0));
  EXPECT_FALSE(sm90::gemm_scales_by_tma(128, 0x1000, 0x2000));
  EXPECT_FALSE(sm90::gemm_scales_by_tma(640, 0x1000, 0x2000));
  EXPECT_FALSE(sm90::gemm_scales_by_tma(1536 + 128, 0x1000, 0x2000));
  EXPECT_FALSE(sm90::gemm_scales_by_tma(2048, 0x1004, 0x2000));
  EXPECT_FALSE(sm90::gemm_scales_by_tma(2048, 0x1000, 0x2008));
}

TEST(GemmHeuristics, PlainChoicesAreInstantiatedAndSensible) {
  sm90::GemmRequest r;
  for (GemmKind kind : {GemmKind::Dense, GemmKind::Contiguous, GemmKind::Masked, GemmKind::Offsets}) {
    for (int64_t m : {1, 20, 128, 4096}) {
      for (auto [n, k] : {std::pair<int64_t, int64_t>{4096, 7168}, {7168, 2048}, {128, 128}}) {
        r.kind = kind, r.rows = m * 8, r.max_m = m, r.groups = kind == GemmKind::Dense ? 1 : 8, r.n = n, r.k = k;
        const int index = choose_variant_index(r);
        ASSERT_GE(index, 0);
        const GemmVariant& v = variant_at(index);
        // Dense problems may run split over K (GemmHeuristics.SplitKOnlyWhereTilesLeaveSMsIdle).
        EXPECT_TRUE(v.kind == kind || (kind == GemmKind::Dense && v.kind == GemmKind::SplitK));
        EXPECT_EQ(v.epilogue, GemmEpilogue::Bf16);
        EXPECT_EQ(n % v.block_n, 0);
        EXPECT_TRUE(sm90::gemm_multicast_allowed(n, v.block_n, v.multicast));
      }
    }
  }
  // Large problems take the largest tile; tiny decode batches the 64-row one.
  sm90::GemmProblem p;
  p.kind = GemmKind::Dense, p.m = 4096, p.n = 4096, p.k = 7168, p.groups = 1;
  EXPECT_EQ(sm90::choose_gemm_tile(p).block_m, 128u);
  EXPECT_GE(sm90::choose_gemm_tile(p).block_n, 128u);
  p.n = 384;  // not a multiple of 256: never the 128x256 tile
  EXPECT_LE(sm90::choose_gemm_tile(p).block_n, 128u);
  // 1.3 waves of 128x256 tiles lose to 1.8 waves of 192x128 (bench/NOTES.md run 57).
  p.m = 2048, p.n = 2816, p.k = 2048;
  EXPECT_EQ(sm90::choose_gemm_tile(p).block_m, 192u);
  p.n = 4096, p.k = 7168;
  p.kind = GemmKind::Masked, p.m = 20, p.groups = 32;
  EXPECT_EQ(sm90::choose_gemm_tile(p).block_m, 64u);
  // 192 rows per expert: one 192-row tile each rather than a 128-row tile and a 64-row tail that
  // re-reads the expert's weights.
  p.m = 192;
  EXPECT_EQ(sm90::choose_gemm_tile(p).block_m, 192u);
}

TEST(GemmHeuristics, MaskedUsesTheExpectedRowsHint) {
  sm90::GemmRequest r;
  r.kind = GemmKind::Masked, r.groups = 32, r.max_m = 4096, r.rows = 32 * 4096, r.n = 4096, r.k = 7168;
  r.expected_m = 20;
  EXPECT_EQ(variant_at(choose_variant_index(r)).block_m, 64u);
  r.expected_m = 0;  // unknown: max_m rows per group
  EXPECT_EQ(variant_at(choose_variant_index(r)).block_m, 128u);
}

TEST(GemmHeuristics, RoutedRules) {
  sm90::GemmRequest r;
  r.kind = GemmKind::Routed, r.groups = 32, r.rows = 128 * 8, r.k = 7168;
  // SwiGLU has only the 256-column variant: one quantization group per tile.
  r.epilogue = GemmEpilogue::SwigluFp8, r.n = 4096;
  EXPECT_EQ(variant_at(choose_variant_index(r)).block_n, 256u);
  r.n = 384;  // 2I with I = 192 is never passed (I is a multiple of 128), but must not pick a wrong tile
  EXPECT_LT(choose_variant_index(r), 0);
  // Expert specialization needs the two N-waves of a wide tile.
  r.epilogue = GemmEpilogue::CombineF32, r.n = 7168, r.expert_specialization = true;
  EXPECT_EQ(variant_at(choose_variant_index(r)).block_n, 256u);
  r.n = 128 * 3;  // 256 does not divide N: the narrow variant
  EXPECT_EQ(variant_at(choose_variant_index(r)).block_n, 128u);
  for (const GemmEpilogue e : {GemmEpilogue::RoutedBf16, GemmEpilogue::SwigluFp8, GemmEpilogue::CombineF32}) {
    r.epilogue = e, r.n = 4096, r.expert_specialization = false;
    const GemmVariant& v = variant_at(choose_variant_index(r));
    EXPECT_EQ(v.kind, GemmKind::Routed);
    EXPECT_EQ(v.epilogue, e);
    EXPECT_EQ(v.block_m, 128u);
    EXPECT_EQ(v.multicast, 1u);
  }
  // The MoE combine takes 256 columns even where the model picks 128 (a decode batch), unless forced.
  r.epilogue = GemmEpilogue::CombineF32, r.n = 7168, r.rows = 8, r.k = 2048;
  EXPECT_EQ(variant_at(choose_variant_index(r)).block_n, 256u);
  r.epilogue = GemmEpilogue::RoutedBf16;
  EXPECT_EQ(variant_at(choose_variant_index(r)).block_n, 128u) << "the decode case must be one the model gives 128";
  r.epilogue = GemmEpilogue::CombineF32;
  EXPECT_EQ(variant_at(choose_variant_index(r, sm90::parse_gemm_tile_override("128x128"))).block_n, 128u);
  // A forced plain tile steers the routed width as the model's choice would.
  r.epilogue = GemmEpilogue::RoutedBf16, r.n = 4096, r.rows = 128 * 8, r.k = 7168;
  EXPECT_EQ(variant_at(choose_variant_index(r, sm90::parse_gemm_tile_override("128x128x1"))).block_n, 128u);
  EXPECT_EQ(variant_at(choose_variant_index(r, sm90::parse_gemm_tile_override("128x256"))).block_n, 256u);
}

// Split-K (split_k.cuh): dense problems whose best unsplit tiles leave at least half of the SMs idle
// are split, within one wave of clusters; others (run 48: m128 n4096 k7168 and m128 n7168 k16384
// measured slower split) and grouped problems never are.
TEST(GemmHeuristics, SplitKOnlyWhereTilesLeaveSMsIdle) {
  sm90::GemmRequest r;
  r.kind = GemmKind::Dense, r.groups = 1, r.num_sms = 132;
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{64, 2048, 7168}, {1, 4096, 7168}, {64, 4096, 7168}}) {
    r.rows = m, r.n = n, r.k = k;
    const sm90::GemmChoice c = sm90::choose_gemm(r);
    ASSERT_GE(c.variant, 0);
    const GemmVariant& v = variant_at(c.variant);
    EXPECT_GT(c.k_splits, 1u) << m << "x" << n << "x" << k;
    EXPECT_EQ(v.kind, GemmKind::SplitK);
    const int64_t tiles = (m + v.block_m - 1) / v.block_m * (n / v.block_n);
    EXPECT_LE(tiles * c.k_splits, r.num_sms);
    EXPECT_TRUE(sm90::gemm_split_allowed(v.block_m, v.block_n, c.k_splits));
  }
  // Enough tiles for most SMs, or too little K to share: no split.
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{128, 4096, 7168}, {128, 7168, 16384}, {128, 7168, 2048},
                         {4096, 4096, 7168}}) {
    r.rows = m, r.n = n, r.k = k;
    EXPECT_EQ(sm90::choose_gemm(r).k_splits, 1u) << m << "x" << n << "x" << k;
    EXPECT_EQ(variant_at(sm90::choose_gemm(r).variant).kind, GemmKind::Dense);
  }
  r.rows = 2048, r.n = 2816, r.k = 2048;
  EXPECT_EQ(sm90::choose_gemm(r).k_splits, 1u);
  r.rows = 128, r.n = 4096, r.k = 128;
  EXPECT_EQ(sm90::choose_gemm(r).k_splits, 1u);
  // Every model choice on a sweep: the variant's kind matches its split; one wave, at least one K
  // block per split, a tile that can split.
  for (int64_t m : {1, 64, 128, 200, 1024}) {
    for (int64_t n : {128, 512, 2048, 7168}) {
      for (int64_t k : {128, 512, 2048, 7168, 65536}) {
        r.rows = m, r.n = n, r.k = k;
        const sm90::GemmChoice c = sm90::choose_gemm(r);
        ASSERT_GE(c.variant, 0);
        const GemmVariant& v = variant_at(c.variant);
        EXPECT_EQ(v.kind, c.k_splits > 1 ? GemmKind::SplitK : GemmKind::Dense);
        if (c.k_splits == 1) continue;
        const int64_t tiles = (m + v.block_m - 1) / v.block_m * (n / v.block_n);
        EXPECT_LE(tiles * c.k_splits, r.num_sms) << m << "x" << n << "x" << k;
        EXPECT_LE(int64_t{c.k_splits} * 128, k);
        EXPECT_TRUE(sm90::gemm_split_allowed(v.block_m, v.block_n, c.k_splits));
      }
    }
  }
  // Grouped layouts never split.
  for (GemmKind kind : {GemmKind::Contiguous, GemmKind::Masked, GemmKind::Offsets}) {
    r.kind = kind, r.groups = 2, r.rows = 128, r.max_m = 64, r.n = 4096, r.k = 7168;
    EXPECT_EQ(sm90::choose_gemm(r).k_splits, 1u);
    EXPECT_EQ(sm90::choose_gemm(r, sm90::parse_gemm_tile_override("128x128x1x4")).k_splits, 1u);
    EXPECT_EQ(variant_at(sm90::choose_gemm(r).variant).kind, kind);
  }
  // Every split a tile's column chunks allow also fits its partial tile in the stages.
  for (const GemmVariant& v : sm90::kGemmVariants) {
    if (v.kind != GemmKind::SplitK) continue;
    for (uint32_t splits = 2; splits <= sm90::kGemmMaxKSplits && (v.block_n / 8) % splits == 0; splits *= 2) {
      EXPECT_TRUE(sm90::gemm_split_allowed(v.block_m, v.block_n, splits)) << v.block_m << "x" << v.block_n;
    }
  }
  EXPECT_FALSE(sm90::gemm_split_allowed(128, 128, 1));
  EXPECT_FALSE(sm90::gemm_split_allowed(128, 128, 3));
  EXPECT_FALSE(sm90::gemm_split_allowed(128, 128, 16));
}

TEST(GemmHeuristics, ForcedSplitK) {
  EXPECT_EQ(sm90::parse_gemm_tile_override("128x128x1x4").k_splits, 4u);
  EXPECT_EQ(sm90::parse_gemm_tile_override("128x128x1").k_splits, 0u);
  EXPECT_EQ(sm90::parse_gemm_tile_override("128x128x1x9").k_splits, 0u);  // beyond the cluster limit: the model's
  sm90::GemmRequest r;
  r.kind = GemmKind::Dense, r.rows = 4096, r.n = 4096, r.k = 128;
  // Forced even where the model would not split (several waves, splits without K blocks).
  sm90::GemmChoice c = sm90::choose_gemm(r, sm90::parse_gemm_tile_override("128x128x1x8"));
  EXPECT_EQ(c.k_splits, 8u);
  EXPECT_EQ(variant_at(c.variant).kind, GemmKind::SplitK);
  EXPECT_EQ(variant_at(c.variant).block_n, 128u);
  // 128x32 has 4 column chunks: 8 splits cannot each own one, the forced split is ignored.
  c = sm90::choose_gemm(r, sm90::parse_gemm_tile_override("128x32x1x8"));
  EXPECT_EQ(variant_at(c.variant).block_n, 32u);
  EXPECT_EQ(variant_at(c.variant).kind, GemmKind::Dense);
  EXPECT_EQ(c.k_splits, 1u);
  c = sm90::choose_gemm(r, sm90::parse_gemm_tile_override("128x32x1x4"));
  EXPECT_EQ(c.k_splits, 4u);
  // Multicast clusters do not split.
  c = sm90::choose_gemm(r, sm90::parse_gemm_tile_override("128x128x2x4"));
  EXPECT_EQ(variant_at(c.variant).multicast, 2u);
  EXPECT_EQ(c.k_splits, 1u);
  // S = 1 forces no split where the model would split.
  r.rows = 128, r.n = 4096, r.k = 7168;
  c = sm90::choose_gemm(r, sm90::parse_gemm_tile_override("128x128x1x1"));
  EXPECT_EQ(variant_at(c.variant).kind, GemmKind::Dense);
  EXPECT_EQ(c.k_splits, 1u);
}

TEST(GemmHeuristics, TileOverride) {
  EXPECT_FALSE(sm90::parse_gemm_tile_override(nullptr).active());
  EXPECT_FALSE(sm90::parse_gemm_tile_override("").active());
  EXPECT_FALSE(sm90::parse_gemm_tile_override("999x1").active());  // no such variant: ignored
  EXPECT_FALSE(sm90::parse_gemm_tile_override("garbage").active());
  sm90::GemmProblem p;
  p.m = 4096, p.n = 4096, p.k = 7168;
  const auto forced = sm90::choose_gemm_tile(p, sm90::parse_gemm_tile_override("64x32"));
  EXPECT_EQ(forced.block_m, 64u);
  EXPECT_EQ(forced.block_n, 32u);
  EXPECT_EQ(sm90::choose_gemm_tile(p, sm90::parse_gemm_tile_override("128x64x1")).multicast, 1u);
  EXPECT_EQ(sm90::choose_gemm_tile(p, sm90::parse_gemm_tile_override("128x64x2")).multicast, 2u);
  p.n = 128 * 3;  // odd number of 128-column blocks: multicast not allowed, falls back to 1
  EXPECT_EQ(sm90::choose_gemm_tile(p, sm90::parse_gemm_tile_override("128x128x2")).multicast, 1u);
  p.n = 384;  // a forced 128x256 the problem does not allow is ignored
  EXPECT_LE(sm90::choose_gemm_tile(p, sm90::parse_gemm_tile_override("128x256")).block_n, 128u);
  // 192 rows: honoured where the layout has the tile (single-CTA only), ignored for contiguous.
  p.n = 4096;
  const auto tall = sm90::choose_gemm_tile(p, sm90::parse_gemm_tile_override("192x128x2"));
  EXPECT_EQ(tall.block_m, 192u);
  EXPECT_EQ(tall.multicast, 1u);
  p.kind = GemmKind::Contiguous;
  EXPECT_EQ(sm90::choose_gemm_tile(p, sm90::parse_gemm_tile_override("192x128")).block_m,
            sm90::choose_gemm_tile(p).block_m);
  p.kind = GemmKind::Dense;
  // The environment variable the GPU tests and benchmarks set.
  setenv("MEGAMOE_CUDA_GEMM_TILE", "64x64x1", 1);
  const auto from_env = sm90::gemm_tile_override_from_env();
  unsetenv("MEGAMOE_CUDA_GEMM_TILE");
  EXPECT_EQ(from_env.block_m, 64u);
  EXPECT_EQ(from_env.block_n, 64u);
  EXPECT_EQ(from_env.multicast, 1u);
  EXPECT_FALSE(sm90::gemm_tile_override_from_env().active());
}

}  // namespace
