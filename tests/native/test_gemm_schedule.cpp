// CPU tests of the SM90 GEMM tile scheduling math (cuda/sm90/gemm/schedule.h): simulating every CTA
// of a persistent grid, each output tile is produced exactly once, tiles stay inside their segment,
// and the grouped layouts' segments cover the rows they must. The variant table and the heuristics
// are tested in test_gemm_variants.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "cuda/sm90/gemm/schedule.h"

namespace {

namespace sm90 = megamoe::cuda::sm90;
using sm90::Segment;
using sm90::TileWork;

TEST(GemmSchedule, SwizzleTileIsABijection) {
  for (uint32_t m_blocks : {1u, 3u, 8u, 17u, 40u}) {
    for (uint32_t n_blocks : {1u, 5u, 32u}) {
      for (uint32_t band : {8u, 16u}) {
        std::set<std::pair<uint32_t, uint32_t>> seen;
        for (uint32_t i = 0; i < m_blocks * n_blocks; ++i) {
          const auto t = sm90::swizzle_tile(i, m_blocks, n_blocks, band);
          ASSERT_LT(t.m_block, m_blocks);
          ASSERT_LT(t.n_block, n_blocks);
          seen.insert({t.m_block, t.n_block});
        }
        EXPECT_EQ(seen.size(), static_cast<std::size_t>(m_blocks * n_blocks))
            << "m_blocks " << m_blocks << " n_blocks " << n_blocks << " band " << band;
      }
    }
  }
}

TEST(GemmSchedule, SwizzleKeepsConsecutiveTilesOnOneBColumn) {
  // Within a band, consecutive indices share the n-block (the B tile) and walk the m-blocks.
  const auto a = sm90::swizzle_tile(0, 32, 32, 8), b = sm90::swizzle_tile(1, 32, 32, 8);
  EXPECT_EQ(a.n_block, b.n_block);
  EXPECT_EQ(b.m_block, a.m_block + 1);
  EXPECT_TRUE(sm90::swizzle_band(128, 128, 132) == 8u || sm90::swizzle_band(128, 128, 132) == 16u);
}

// Simulates `ctas` persistent CTAs walking a segment list; returns (row_begin, n_block) -> count.
template <typename SegmentAt>
std::map<std::pair<uint32_t, uint32_t>, int> simulate(SegmentAt at, uint32_t num_segments, uint32_t block_m,
                                                      uint32_t n_blocks, uint32_t ctas,
                                                      std::vector<TileWork>* all = nullptr, uint32_t pair = 1) {
  std::map<std::pair<uint32_t, uint32_t>, int> count;
  for (uint32_t c = 0; c < ctas; ++c) {
    sm90::SegmentWalker<SegmentAt> walker(at, num_segments, block_m, n_blocks, 8, pair);
    TileWork w{};
    for (uint32_t it = 0;; ++it) {
      if (!walker.find(c + it * ctas, w)) break;
      ++count[{w.row_begin, w.n_block}];
      if (all != nullptr) all->push_back(w);
      EXPECT_LE(w.row_end, w.row_begin + block_m);
      EXPECT_GT(w.row_end, w.row_begin);
      EXPECT_LT(w.n_block, n_blocks);
    }
  }
  return count;
}

TEST(GemmSchedule, MaskedCoversEveryValidRowOnce) {
  std::mt19937 rng(7);
  for (uint32_t trial = 0; trial < 50; ++trial) {
    const uint32_t groups = 1 + static_cast<uint32_t>(rng()) % 40, max_m = 1 + static_cast<uint32_t>(rng()) % 300, block_m = static_cast<uint32_t>(rng()) % 2 ? 64 : 128;
    const uint32_t n_blocks = 1 + static_cast<uint32_t>(rng()) % 6, ctas = 1 + static_cast<uint32_t>(rng()) % 140;
    std::vector<int32_t> masked(groups);
    for (auto& v : masked) v = static_cast<int32_t>(static_cast<uint32_t>(rng()) % (max_m + 1));
    if (trial % 5 == 0) masked[0] = -3;                  // clamped to 0
    if (trial % 7 == 0) masked[groups - 1] = max_m + 9;  // clamped to max_m
    auto at = [&](uint32_t e) { return sm90::masked_segment(e, masked[e], max_m); };
    std::vector<TileWork> tiles;
    const auto count = simulate(at, groups, block_m, n_blocks, ctas, &tiles);
    std::vector<int> covered(static_cast<std::size_t>(groups) * max_m * n_blocks, 0);
    for (const auto& [key, c] : count) EXPECT_EQ(c, 1);
    for (const TileWork& w : tiles) {
      ASSERT_GE(w.group, 0);
      const uint32_t e = static_cast<uint32_t>(w.group);
      EXPECT_GE(w.row_begin, e * max_m);
      EXPECT_LE(w.row_end, e * max_m + static_cast<uint32_t>(std::clamp<int32_t>(masked[e], 0, max_m)));
      for (uint32_t r = w.row_begin; r < w.row_end; ++r) ++covered[(static_cast<std::size_t>(r) * n_blocks) + w.n_block];
    }
    for (uint32_t e = 0; e < groups; ++e) {
      const uint32_t valid = static_cast<uint32_t>(std::clamp<int32_t>(masked[e], 0, max_m));
      for (uint32_t r = 0; r < max_m; ++r) {
        for (uint32_t nb = 0; nb < n_blocks; ++nb) {
          EXPECT_EQ(covered[(static_cast<std::size_t>(e * max_m + r) * n_blocks) + nb], r < valid ? 1 : 0)
              << "group " << e << " row " << r << " n-block " << nb;
        }
      }
    }
  }
}

TEST(GemmSchedule, OffsetsCoverEveryRowOnceIncludingGaps) {
  std::mt19937 rng(11);
  for (uint32_t trial = 0; trial < 50; ++trial) {
    const uint32_t groups = 1 + static_cast<uint32_t>(rng()) % 30, m = 1 + static_cast<uint32_t>(rng()) % 700, block_m = static_cast<uint32_t>(rng()) % 2 ? 64 : 128;
    const uint32_t n_blocks = 1 + static_cast<uint32_t>(rng()) % 4, ctas = 1 + static_cast<uint32_t>(rng()) % 140;
    std::vector<int64_t> offsets(groups + 1);
    for (auto& v : offsets) v = static_cast<uint32_t>(rng()) % (m + 1);
    std::sort(offsets.begin(), offsets.end());
    auto offset_at = [&](uint32_t i) { return offsets[i]; };
    auto at = [&](uint32_t s) { return sm90::offsets_segment(s, groups, m, offset_at); };
    std::vector<TileWork> tiles;
    const auto count = simulate(at, groups + 2, block_m, n_blocks, ctas, &tiles);
    for (const auto& [key, c] : count) EXPECT_EQ(c, 1);
    std::vector<int> covered(static_cast<std::size_t>(m) * n_blocks, 0);
    for (const TileWork& w : tiles) {
      for (uint32_t r = w.row_begin; r < w.row_end; ++r) {
        ++covered[static_cast<std::size_t>(r) * n_blocks + w.n_block];
        // The tile's group owns the row (or no group does and the tile is a zero tile).
        int32_t owner = -1;
        for (uint32_t e = 0; e < groups; ++e) {
          if (r >= offsets[e] && r < offsets[e + 1]) owner = static_cast<int32_t>(e);
        }
        EXPECT_EQ(w.group, owner) << "row " << r;
      }
    }
    for (std::size_t i = 0; i < covered.size(); ++i) EXPECT_EQ(covered[i], 1) << "row " << i / n_blocks;
  }
}

TEST(GemmSchedule, OffsetsOutOfRangeStayInBounds) {
  // A bad table (decreasing, negative, beyond M) never yields rows outside [0, M).
  const std::vector<int64_t> offsets = {-5, 40, 20, 900, 10};
  const uint32_t m = 100;
  auto offset_at = [&](uint32_t i) { return offsets[i]; };
  for (uint32_t s = 0; s < 6; ++s) {
    const Segment seg = sm90::offsets_segment(s, 4, m, offset_at);
    EXPECT_LE(seg.row_begin, seg.row_end);
    EXPECT_LE(seg.row_end, m);
  }
}

TEST(GemmSchedule, DenseTilesCoverTheGridOnce) {
  for (uint32_t m : {1u, 127u, 129u, 4096u}) {
    for (uint32_t block_m : {64u, 128u}) {
      const uint32_t n_blocks = 7, ctas = 132;
      std::map<std::pair<uint32_t, uint32_t>, int> count;
      for (uint32_t c = 0; c < ctas; ++c) {
        TileWork w{};
        for (uint32_t it = 0; sm90::dense_tile(c + it * ctas, m, block_m, n_blocks, 16, w); ++it) {
          ++count[{w.row_begin, w.n_block}];
          EXPECT_LE(w.row_end, m);
        }
      }
      EXPECT_EQ(count.size(), static_cast<std::size_t>((m + block_m - 1) / block_m * n_blocks));
      for (const auto& [key, c] : count) EXPECT_EQ(c, 1);
    }
  }
}

// Split-K: a grid of tiles * splits CTAs; the splits CTAs of each cluster get the same tile, exactly
// one, and their K ranges cover every K block once, in rank order; their column slices cover the tile.
TEST(GemmSchedule, SplitKClustersCoverEveryTileAndKBlockOnce) {
  for (uint32_t m : {1u, 129u, 256u}) {
    for (uint32_t splits : {1u, 2u, 4u, 8u}) {
      for (uint32_t num_kb : {1u, 3u, 8u, 56u, 512u}) {
        const uint32_t block_m = 128, n_blocks = 5;
        const uint32_t tiles = (m + block_m - 1) / block_m * n_blocks, grid = tiles * splits;
        std::map<std::pair<uint32_t, uint32_t>, std::vector<uint32_t>> k_blocks_of;  // tile -> K blocks
        for (uint32_t c = 0; c < grid; ++c) {
          TileWork w{};
          uint32_t got = 0;
          for (uint32_t it = 0; sm90::dense_tile(sm90::split_k_tile_index(c, it, grid, splits), m, block_m, n_blocks, 16, w);
               ++it) {
            ++got;
            const auto r = sm90::split_k_range(num_kb, c % splits, splits);
            ASSERT_LE(r.begin, r.end);
            auto& list = k_blocks_of[{w.row_begin, w.n_block}];
            for (uint32_t kb = r.begin; kb < r.end; ++kb) list.push_back(kb);
          }
          EXPECT_EQ(got, 1u) << "CTA " << c;
        }
        ASSERT_EQ(k_blocks_of.size(), static_cast<std::size_t>(tiles));
        for (const auto& [tile, list] : k_blocks_of) {
          ASSERT_EQ(list.size(), static_cast<std::size_t>(num_kb));
          for (uint32_t kb = 0; kb < num_kb; ++kb) EXPECT_EQ(list[kb], kb);
        }
      }
      for (uint32_t block_n : {32u, 64u, 128u, 256u}) {
        if ((block_n / 8) % splits != 0) continue;
        uint32_t next = 0;
        for (uint32_t rank = 0; rank < splits; ++rank) {
          const auto owned = sm90::split_k_owned_chunks(block_n, rank, splits);
          EXPECT_EQ(owned.begin, next);
          EXPECT_GT(owned.end, owned.begin);
          next = owned.end;
        }
        EXPECT_EQ(next, block_n / 8);
      }
    }
  }
}

// TMA multicast pairs CTAs 2j and 2j+1 of a cluster: with an even number of n-blocks they must always
// get tiles of the same m-block (and group) on neighbouring n-blocks, or both get none.
TEST(GemmSchedule, MulticastPairsShareTheMBlock) {
  std::mt19937 rng(5);
  for (uint32_t trial = 0; trial < 40; ++trial) {
    const uint32_t groups = 1 + static_cast<uint32_t>(rng()) % 20, max_m = 1 + static_cast<uint32_t>(rng()) % 300;
    const uint32_t n_blocks = 2 * (1 + static_cast<uint32_t>(rng()) % 5), ctas = 2 * (1 + static_cast<uint32_t>(rng()) % 66);
    std::vector<int32_t> masked(groups);
    for (auto& v : masked) v = static_cast<int32_t>(static_cast<uint32_t>(rng()) % (max_m + 1));
    auto at = [&](uint32_t e) { return sm90::masked_segment(e, masked[e], max_m); };
    for (uint32_t c = 0; c < ctas; c += 2) {
      sm90::SegmentWalker<decltype(at)> w0(at, groups, 64, n_blocks, 8, 2), w1(at, groups, 64, n_blocks, 8, 2);
      for (uint32_t it = 0;; ++it) {
        TileWork a{}, b{};
        const bool has_a = w0.find(c + it * ctas, a), has_b = w1.find(c + 1 + it * ctas, b);
        ASSERT_EQ(has_a, has_b);
        if (!has_a) break;
        EXPECT_EQ(a.row_begin, b.row_begin);
        EXPECT_EQ(a.group, b.group);
        EXPECT_EQ(a.n_block / 2, b.n_block / 2);
        EXPECT_NE(a.n_block, b.n_block);
      }
    }
    const auto count = simulate(at, groups, 64, n_blocks, ctas, nullptr, 2);
    for (const auto& [key, c] : count) EXPECT_EQ(c, 1);
  }
  // Dense grid.
  for (uint32_t m : {1u, 200u, 4096u}) {
    std::map<std::pair<uint32_t, uint32_t>, int> count;
    for (uint32_t c = 0; c < 132; c += 2) {
      for (uint32_t it = 0;; ++it) {
        TileWork a{}, b{};
        const bool has_a = sm90::dense_tile(c + it * 132, m, 128, 32, 16, a, 2);
        const bool has_b = sm90::dense_tile(c + 1 + it * 132, m, 128, 32, 16, b, 2);
        ASSERT_EQ(has_a, has_b);
        if (!has_a) break;
        EXPECT_EQ(a.row_begin, b.row_begin);
        EXPECT_EQ(a.n_block ^ 1u, b.n_block);
        ++count[{a.row_begin, a.n_block}];
        ++count[{b.row_begin, b.n_block}];
      }
    }
    EXPECT_EQ(count.size(), static_cast<std::size_t>((m + 127) / 128 * 32));
    for (const auto& [key, c] : count) EXPECT_EQ(c, 1);
  }
}

TEST(GemmSchedule, ContiguousRowGroup) {
  EXPECT_EQ(sm90::contiguous_row_group(3, 8), 3);
  EXPECT_EQ(sm90::contiguous_row_group(-1, 8), -1);
  EXPECT_EQ(sm90::contiguous_row_group(8, 8), -1);
  EXPECT_EQ(sm90::contiguous_row_group(-7, 8), -1);
}

// Routed layout with expert specialization: every row of every expert segment (and of the dropped
// segment) lies in exactly one tile per n-block; segments of at most 64 rows get 64-row tiles.
TEST(GemmSchedule, RoutedSegmentsWithExpertSpecializationCoverEveryRowOnce) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const uint32_t experts = 1 + static_cast<uint32_t>(rng() % 40);
    std::vector<int32_t> offsets(experts + 2, 0);
    for (uint32_t e = 0; e <= experts; ++e) {
      const uint32_t rows = rng() % 3 == 0 ? 0u : static_cast<uint32_t>(rng() % 300);
      offsets[e + 1] = offsets[e] + static_cast<int32_t>(rows);
    }
    const auto at = [&](uint32_t s) { return sm90::routed_segment(s, experts, offsets[s], offsets[s + 1]); };
    for (const uint32_t narrow : {0u, 64u}) {
      const uint32_t n_blocks = 3;
      std::map<std::pair<uint32_t, uint32_t>, int> rows_seen;
      for (uint32_t c = 0; c < 7; ++c) {
        sm90::SegmentWalker<decltype(at)> walker(at, experts + 1, 128, n_blocks, 8, 1, narrow);
        TileWork w{};
        for (uint32_t it = 0; walker.find(c + it * 7, w); ++it) {
          const uint32_t s = w.group >= 0 ? static_cast<uint32_t>(w.group) : experts;
          const uint32_t seg_rows = static_cast<uint32_t>(offsets[s + 1] - offsets[s]);
          ASSERT_EQ(w.block_rows, narrow != 0 && seg_rows <= narrow ? narrow : 128u);
          ASSERT_GE(w.row_begin, static_cast<uint32_t>(offsets[s]));
          ASSERT_LE(w.row_end, static_cast<uint32_t>(offsets[s + 1]));
          ASSERT_LE(w.row_end - w.row_begin, w.block_rows);
          for (uint32_t r = w.row_begin; r < w.row_end; ++r) ++rows_seen[{r, w.n_block}];
        }
      }
      ASSERT_EQ(rows_seen.size(), static_cast<std::size_t>(offsets[experts + 1]) * n_blocks) << "narrow " << narrow;
      for (const auto& [key, n] : rows_seen) ASSERT_EQ(n, 1) << "row " << key.first << " n-block " << key.second;
    }
  }
}

// The walker's batched look-ahead must hand out exactly the tiles of a walk that reads one segment
// at a time, for any run of empty segments (a decode batch over many experts) and any grid.
TEST(GemmSchedule, LookaheadWalkEqualsOneSegmentAtATime) {
  std::mt19937 rng(19);
  for (uint32_t trial = 0; trial < 60; ++trial) {
    const uint32_t groups = 1 + static_cast<uint32_t>(rng()) % 300;
    const uint32_t block_m = static_cast<uint32_t>(rng()) % 2 ? 64 : 128, narrow_m = trial % 3 == 0 ? block_m / 2 : 0;
    const uint32_t n_blocks = 1 + static_cast<uint32_t>(rng()) % 5, ctas = 1 + static_cast<uint32_t>(rng()) % 140;
    const uint32_t pair = n_blocks % 2 == 0 && trial % 2 == 0 ? 2 : 1;
    // Routing offsets [groups + 2] with only a few non-empty experts (sometimes none).
    std::vector<int32_t> offsets(groups + 2, 0);
    const uint32_t busy = trial % 10 == 0 ? 0 : 1 + static_cast<uint32_t>(rng()) % 9;
    std::vector<int32_t> rows(groups + 1, 0);
    for (uint32_t i = 0; i < busy; ++i) rows[static_cast<uint32_t>(rng()) % (groups + 1)] += 1 + static_cast<int32_t>(rng() % 200);
    for (uint32_t s = 0; s <= groups; ++s) offsets[s + 1] = offsets[s] + rows[s];
    auto at = [&](uint32_t s) { return sm90::routed_segment(s, groups, offsets[s], offsets[s + 1]); };
    const uint32_t num_segments = groups + 1;
    for (uint32_t c = 0; c < ctas; ++c) {
      sm90::SegmentWalker<decltype(at)> walker(at, num_segments, block_m, n_blocks, 8, pair, narrow_m);
      // Reference: segment by segment, tiles numbered consecutively.
      uint32_t s = 0, before = 0;
      for (uint32_t it = 0;; ++it) {
        const uint32_t index = c + it * ctas;
        uint32_t tiles = 0, height = block_m;
        for (; s < num_segments; ++s) {
          const sm90::Segment seg = at(s);
          height = sm90::segment_block_m(seg.row_end - seg.row_begin, block_m, narrow_m);
          tiles = (seg.row_end - seg.row_begin + height - 1) / height * n_blocks;
          if (index < before + tiles) break;
          before += tiles;
        }
        TileWork w{};
        const bool found = walker.find(index, w);
        ASSERT_EQ(found, s < num_segments) << "trial " << trial << " cta " << c << " index " << index;
        if (!found) break;
        const sm90::Segment seg = at(s);
        const auto t = sm90::swizzle_tile_grouped(index - before, tiles / n_blocks, n_blocks, 8, pair);
        EXPECT_EQ(w.row_begin, seg.row_begin + t.m_block * height);
        EXPECT_EQ(w.n_block, t.n_block);
        EXPECT_EQ(w.group, seg.group);
        EXPECT_EQ(w.block_rows, height);
      }
    }
  }
}

TEST(GemmSchedule, RoutedSegmentClampsBadOffsets) {
  const auto s = sm90::routed_segment(2, 4, 50, 10);  // end before begin
  EXPECT_EQ(s.row_begin, 50u);
  EXPECT_EQ(s.row_end, 50u);
  EXPECT_EQ(s.group, 2);
  const auto dropped = sm90::routed_segment(4, 4, -5, 7);
  EXPECT_EQ(dropped.row_begin, 0u);
  EXPECT_EQ(dropped.group, -1);
  EXPECT_EQ(sm90::segment_block_m(64, 128, 64), 64u);
  EXPECT_EQ(sm90::segment_block_m(65, 128, 64), 128u);
  EXPECT_EQ(sm90::segment_block_m(3, 128, 0), 128u);
}

}  // namespace
