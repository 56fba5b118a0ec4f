// The one table of SM90 GEMM kernel variants: every (layout, epilogue, tile, multicast) the CUDA
// backend compiles. The instantiation units (instances.cu.in, sharded by CMake), the launcher table
// of dispatch.cu and the tile choice of heuristics.h are all generated from kGemmVariants, so adding
// a tile or an epilogue is one row here plus the code that is new (docs/ARCHITECTURE.md).
//
// Plain C++ without CUDA: CPU CI compiles and tests it (tests/native/test_gemm_variants.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace megamoe::cuda::sm90 {

// How the rows of A / D map to groups (experts); core of the tile schedulers (schedule.h).
// Routed: the slots of a batch grouped by expert on the device. SplitK: dense rows, each tile's K
// blocks spread over a cluster of CTAs (split_k.cuh; the dispatcher's choice for dense problems
// whose tiles would leave SMs idle, never requested by a caller).
enum class GemmKind : int32_t { Dense = 0, Contiguous = 1, Masked = 2, Offsets = 3, Routed = 4, SplitK = 5 };

enum class GemmEpilogue : int32_t {
  // BF16 tile through shared memory and a TMA store (dense, contiguous, masked, offsets).
  Bf16 = 0,
  // Routed GEMM: A rows gathered from the tokens, each output row written to its slot t * top_k + j,
  // scaled by the slot's top-k weight (docs/NUMERICS.md section 3, routed).
  RoutedBf16 = 1,
  // MoE up-projection: A rows gathered; on gate/up-interleaved columns the clamped activation times
  // the top-k weight, re-quantized to FP8 with 1x128 scales, rows in grouped order (section 4,
  // steps 2-4). Needs BLOCK_N = 256: one tile is one 128-column quantization group.
  SwigluFp8 = 2,
  // MoE down-projection: BF16 rows per slot, then the last tile of each (token, n-block) sums the
  // token's slots in slot order, in float32, into BF16 y (section 4, steps 5-6).
  CombineF32 = 3,
};

// Epilogues that gather A rows by token (cp.async from the producer warps) instead of a TMA load.
constexpr bool epilogue_gathers_a(GemmEpilogue e) {
  return e == GemmEpilogue::RoutedBf16 || e == GemmEpilogue::SwigluFp8;
}
// Epilogues that stage the output tile in shared memory for a TMA store.
constexpr bool epilogue_tma_store(GemmEpilogue e) { return e == GemmEpilogue::Bf16; }

struct GemmTileShape {
  uint32_t block_m;
  uint32_t block_n;
};

struct GemmVariant {
  GemmKind kind;
  GemmEpilogue epilogue;
  uint32_t block_m;
  uint32_t block_n;
  uint32_t multicast;  // CTAs of a cluster sharing the A tile through TMA multicast (1 or 2)
};

constexpr bool operator==(const GemmVariant& a, const GemmVariant& b) {
  return a.kind == b.kind && a.epilogue == b.epilogue && a.block_m == b.block_m && a.block_n == b.block_n &&
         a.multicast == b.multicast;
}

// One row of the table: the cross product of its layouts, tile shapes and multicast factors, all
// with one epilogue. Shapes are listed largest first: the heuristics break ties towards earlier ones.
struct GemmVariantRow {
  uint32_t kinds;  // bit (1 << GemmKind)
  GemmEpilogue epilogue;
  GemmTileShape tiles[8];
  uint32_t num_tiles;
  uint32_t multicasts;  // bit (1 << multicast)
};

constexpr uint32_t kind_bit(GemmKind k) { return 1u << static_cast<uint32_t>(k); }
constexpr uint32_t kPlainLayouts = kind_bit(GemmKind::Dense) | kind_bit(GemmKind::Contiguous) |
                                   kind_bit(GemmKind::Masked) | kind_bit(GemmKind::Offsets);

// Layouts of the 192-row tile (three math warpgroups). Not contiguous: it zeroes the rows of other
// experts inside a tile, which is right only for tiles inside its 128-row-aligned segments.
constexpr uint32_t kTallTileLayouts =
    kind_bit(GemmKind::Dense) | kind_bit(GemmKind::Masked) | kind_bit(GemmKind::Offsets);

// clang-format off
inline constexpr GemmVariantRow kGemmVariantRows[] = {
  // layouts                      epilogue                  tiles (BLOCK_M x BLOCK_N)                                           multicast
  {kPlainLayouts,                 GemmEpilogue::Bf16,       {{128, 256}, {128, 128}, {128, 64}, {128, 32}, {64, 128}, {64, 64}, {64, 32}}, 7, 0b110},
  {kind_bit(GemmKind::SplitK),    GemmEpilogue::Bf16,       {{128, 256}, {128, 128}, {128, 64}, {128, 32}, {64, 128}, {64, 64}, {64, 32}}, 7, 0b010},
  {kind_bit(GemmKind::Routed),    GemmEpilogue::RoutedBf16, {{128, 256}, {128, 128}},                                                      2, 0b010},
  {kind_bit(GemmKind::Routed),    GemmEpilogue::SwigluFp8,  {{128, 256}},                                                                  1, 0b010},
  {kind_bit(GemmKind::Routed),    GemmEpilogue::CombineF32, {{128, 256}, {128, 128}},                                                      2, 0b010},
  {kTallTileLayouts,              GemmEpilogue::Bf16,       {{192, 128}},                                                                  1, 0b010},
};
// clang-format on

namespace detail {

template <typename Emit>
constexpr void for_each_row_variant(Emit&& emit) {
  for (const GemmVariantRow& row : kGemmVariantRows) {
    for (uint32_t kind = 0; kind < 32; ++kind) {
      if ((row.kinds >> kind & 1u) == 0) continue;
      for (uint32_t t = 0; t < row.num_tiles; ++t) {
        for (uint32_t mc = 1; mc <= 2; ++mc) {
          if ((row.multicasts >> mc & 1u) == 0) continue;
          emit(GemmVariant{static_cast<GemmKind>(kind), row.epilogue, row.tiles[t].block_m, row.tiles[t].block_n, mc});
        }
      }
    }
  }
}

constexpr size_t count_variants() {
  size_t n = 0;
  for_each_row_variant([&](const GemmVariant&) { ++n; });
  return n;
}

}  // namespace detail

inline constexpr size_t kNumGemmVariants = detail::count_variants();

// Row by row, layouts in GemmKind order, shapes in row order, multicast 1 before 2.
inline constexpr std::array<GemmVariant, kNumGemmVariants> kGemmVariants = [] {
  std::array<GemmVariant, kNumGemmVariants> v{};
  size_t i = 0;
  detail::for_each_row_variant([&](const GemmVariant& x) { v[i++] = x; });
  return v;
}();

// Index of a variant in kGemmVariants, or -1 when it is not instantiated.
constexpr int gemm_variant_index(const GemmVariant& v) {
  for (size_t i = 0; i < kNumGemmVariants; ++i) {
    if (kGemmVariants[i] == v) return static_cast<int>(i);
  }
  return -1;
}

// What the kernel template requires of a variant (GemmConfig's static_asserts say the same).
constexpr bool gemm_variant_valid(const GemmVariant& v) {
  const bool shape_ok = (v.block_m == 64 || v.block_m == 128) &&
                        (v.block_n == 32 || v.block_n == 64 || v.block_n == 128 || v.block_n == 256);
  // Three math warpgroups of 152 registers: one 128-column N-wave, BF16 epilogue, no cluster.
  const bool tall_ok = v.block_m == 192 && v.block_n == 128 && v.epilogue == GemmEpilogue::Bf16 && v.multicast == 1 &&
                       (kTallTileLayouts >> static_cast<uint32_t>(v.kind) & 1u) != 0;
  const bool multicast_ok = v.multicast == 1 || v.multicast == 2;
  // Split-K clusters share a tile's K, not its A tile.
  const bool split_ok = v.kind != GemmKind::SplitK || (v.epilogue == GemmEpilogue::Bf16 && v.multicast == 1);
  // The fused epilogues write from registers, 128 rows per tile, one CTA per tile.
  const bool routed_ok = v.epilogue == GemmEpilogue::Bf16 ? v.kind != GemmKind::Routed
                                                          : v.kind == GemmKind::Routed && v.block_m == 128 &&
                                                                v.multicast == 1;
  const bool swiglu_ok = v.epilogue != GemmEpilogue::SwigluFp8 || v.block_n == 256;
  return (shape_ok || tall_ok) && multicast_ok && split_ok && routed_ok && swiglu_ok;
}

constexpr bool gemm_variants_valid_and_unique() {
  for (size_t i = 0; i < kNumGemmVariants; ++i) {
    if (!gemm_variant_valid(kGemmVariants[i])) return false;
    for (size_t j = 0; j < i; ++j) {
      if (kGemmVariants[i] == kGemmVariants[j]) return false;
    }
  }
  return true;
}
static_assert(gemm_variants_valid_and_unique(), "kGemmVariantRows lists an invalid or a duplicate variant");

}  // namespace megamoe::cuda::sm90
