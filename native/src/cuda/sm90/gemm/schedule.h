// Tile scheduling index math of the SM90 block-scaled GEMM kernel (scheduler.cuh runs it on the
// device), plain C++ shared with the CPU unit tests (tests/native/test_gemm_schedule.cpp).
//
// A persistent kernel runs one CTA per SM; CTA `c` of `C` takes the tiles c, c + C, c + 2C, ... of
// one global tile numbering. Tiles are BLOCK_M x BLOCK_N pieces of the output. Grouped layouts
// number the tiles segment by segment: a segment is a range of rows of the 2D view of A / D that
// belongs to one group (expert), or to no group (group -1: rows written as zeros, no MMA):
//   dense       one segment [0, M), group 0;
//   contiguous  one segment [0, M); the group of each tile is read from m_indices by the kernel;
//   masked      segment e = [e * max_m, e * max_m + masked_m[e]), group e;
//   offsets     [0, off[0]) group -1, then [off[e], off[e+1]) group e, then [off[E], M) group -1;
//   routed      the slots of a batch grouped by expert on the device (cuda/routing.cuh):
//               segment e = [off[e], off[e+1]) group e, then the dropped slots [off[E], off[E+1])
//               as group -1 (written as zeros where the output has one row per slot).
// Inside a segment tiles are ordered for L2 reuse (swizzle_tile); with TMA multicast of A across a
// cluster of 2 CTAs, tiles 2j and 2j+1 share their m-block (swizzle_tile_grouped). Every segment
// then has an even number of tiles, so the two CTAs of a cluster always get a tile pair or none.
#pragma once

#include <cstdint>

#include "core/host_device.h"
#include "core/int_math.h"

namespace megamoe::cuda::sm90 {

MEGAMOE_HD uint32_t sched_min(uint32_t a, uint32_t b) { return a < b ? a : b; }
MEGAMOE_HD int64_t sched_clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

struct TileCoord {
  uint32_t m_block;
  uint32_t n_block;
};

// Tile `index` of a num_m_blocks x num_n_blocks grid. Consecutive indices walk down a band of up
// to `band` m-blocks with the same n-block, then move to the next n-block: the CTAs of one wave
// share each B tile and a band of A tiles in L2.
MEGAMOE_HD TileCoord swizzle_tile(uint32_t index, uint32_t num_m_blocks, uint32_t num_n_blocks, uint32_t band) {
  const uint32_t per_band = num_n_blocks * band;
  const uint32_t band_index = index / per_band;
  const uint32_t first_m = band_index * band;
  const uint32_t in_band = index - band_index * per_band;
  const uint32_t rows = sched_min(band, num_m_blocks - first_m);
  return {first_m + in_band % rows, in_band / rows};
}

// With a cluster of `pair` CTAs sharing the A tile (TMA multicast), consecutive tile indices
// i = pair * j + q (q < pair) must take the same m-block and neighbouring n-blocks: the pairs are
// swizzled as tiles of a num_m_blocks x (num_n_blocks / pair) grid. num_n_blocks % pair == 0.
MEGAMOE_HD TileCoord swizzle_tile_grouped(uint32_t index, uint32_t num_m_blocks, uint32_t num_n_blocks, uint32_t band,
                                          uint32_t pair) {
  if (pair <= 1) return swizzle_tile(index, num_m_blocks, num_n_blocks, band);
  const TileCoord t = swizzle_tile(index / pair, num_m_blocks, num_n_blocks / pair, band);
  return {t.m_block, t.n_block * pair + index % pair};
}

// Band height (in m-blocks) that minimizes the rows + columns of tiles one wave of `num_sms`
// CTAs touches (DeepGEMM's rule): 8 or 16.
MEGAMOE_HD uint32_t swizzle_band(uint32_t block_m, uint32_t block_n, uint32_t num_sms) {
  uint32_t best = 8;
  uint64_t best_usage = ~uint64_t{0};
  for (uint32_t candidate = 8; candidate <= 16; candidate += 8) {
    const uint64_t usage = uint64_t{candidate} * block_m + uint64_t{ceil_div<uint32_t>(num_sms, candidate)} * block_n;
    if (usage < best_usage) {
      best_usage = usage;
      best = candidate;
    }
  }
  return best;
}

struct Segment {
  uint32_t row_begin;  // first row of the segment in the 2D view of A / D
  uint32_t row_end;    // one past its last row
  int32_t group;       // expert, or -1 for rows that are only zeroed
};

// Segment e of the masked layout. masked_m outside [0, max_m] is clamped (the CUDA backend cannot
// validate device data; docs/NUMERICS.md).
MEGAMOE_HD Segment masked_segment(uint32_t e, int32_t masked_m, uint32_t max_m) {
  const uint32_t rows = static_cast<uint32_t>(sched_clamp(masked_m, 0, max_m));
  return {e * max_m, e * max_m + rows, static_cast<int32_t>(e)};
}

// Segment s in [0, E + 2) of the offsets layout; `offset(i)` returns offsets[i] for i in [0, E].
// Values are clamped to [0, M] and each segment's end to at least its begin, so a bad table never
// leads outside [0, M).
template <typename OffsetAt>
MEGAMOE_HD Segment offsets_segment(uint32_t s, uint32_t num_groups, uint32_t m, OffsetAt&& offset) {
  if (s == 0) return {0, static_cast<uint32_t>(sched_clamp(offset(0), 0, m)), -1};
  if (s == num_groups + 1) return {static_cast<uint32_t>(sched_clamp(offset(num_groups), 0, m)), m, -1};
  const int64_t begin = sched_clamp(offset(s - 1), 0, m);
  const int64_t end = sched_clamp(offset(s), begin, m);
  return {static_cast<uint32_t>(begin), static_cast<uint32_t>(end), static_cast<int32_t>(s - 1)};
}

// Segment s in [0, E] of the routed layout from the routing offsets (E + 2 entries, written by
// the routing kernel). Clamped like offsets_segment so a bad table never leads outside [0, M).
MEGAMOE_HD Segment routed_segment(uint32_t s, uint32_t num_groups, int32_t begin, int32_t end) {
  const int64_t b = sched_clamp(begin, 0, INT32_MAX);
  const int64_t e = sched_clamp(end, b, INT32_MAX);
  return {static_cast<uint32_t>(b), static_cast<uint32_t>(e), s < num_groups ? static_cast<int32_t>(s) : -1};
}

// Expert specialization: the height of a segment's tiles, chosen on the device from its row count.
// A segment that fits in `narrow_m` rows runs in tiles of that height (the kernel then spreads the
// tile's columns over its warpgroups instead of its rows); others use the kernel's BLOCK_M.
// narrow_m = 0 turns it off.
MEGAMOE_HD uint32_t segment_block_m(uint32_t rows, uint32_t block_m, uint32_t narrow_m) {
  return narrow_m != 0 && rows <= narrow_m ? narrow_m : block_m;
}

// One output tile as the kernel sees it.
struct TileWork {
  uint32_t row_begin;  // first row of the tile in the 2D view of A / D
  uint32_t row_end;    // one past the last row that belongs to the tile's segment (<= row_begin + block_rows)
  uint32_t n_block;
  int32_t group;       // B / b_scales group; -1: zeros
  uint32_t block_rows; // height of this tile: BLOCK_M, or narrow_m under expert specialization
};

// Walks the segments of a grouped layout in the order of the global tile numbering. A CTA asks for
// increasing tile indices only, so it never walks back. `segment_at(s)` returns segment s of
// `num_segments`. Moving on reads the next kLookahead segment descriptors with independent loads, so
// a run of empty segments (masked or offsets layouts with idle experts) costs one memory latency per
// kLookahead segments instead of one per segment; the descriptors past the segment it stops at are
// read again by the next move (cheap: they are cache hits, and loads, not latency, are what is spent).
template <typename SegmentAt>
class SegmentWalker {
 public:
  static constexpr uint32_t kLookahead = 8;

  MEGAMOE_HD SegmentWalker(SegmentAt segment_at, uint32_t num_segments, uint32_t block_m, uint32_t num_n_blocks,
                           uint32_t band, uint32_t pair = 1, uint32_t narrow_m = 0)
      : segment_at_(segment_at),
        num_segments_(num_segments),
        block_m_(block_m),
        narrow_m_(narrow_m),
        num_n_blocks_(num_n_blocks),
        band_(band),
        pair_(pair) {
    if (num_segments_ > 0) set_current(segment_at_(0));
  }

  // Tile `index` of the numbering; false once `index` is past the last tile.
  MEGAMOE_HD bool find(uint32_t index, TileWork& work) {
    while (segment_ < num_segments_ && index >= tiles_before_ + tiles_) advance(index);
    if (segment_ >= num_segments_) return false;
    const TileCoord t = swizzle_tile_grouped(index - tiles_before_, m_blocks_, num_n_blocks_, band_, pair_);
    work.row_begin = current_.row_begin + t.m_block * segment_block_m_;
    work.row_end = sched_min(current_.row_end, work.row_begin + segment_block_m_);
    work.n_block = t.n_block;
    work.group = current_.group;
    work.block_rows = segment_block_m_;
    return true;
  }

 private:
  // Leaves the current segment for the next ones, up to kLookahead of them: stops at the first that
  // holds `index`, after the last segment, or at the end of the batch (find() then asks again).
  // Invariant on return: tiles_before_ counts the tiles of the segments before segment_.
  MEGAMOE_HD void advance(uint32_t index) {
    Segment next[kLookahead];
MEGAMOE_UNROLL
    for (uint32_t j = 0; j < kLookahead; ++j) {
      const uint32_t s = segment_ + 1 + j;
      next[j] = s < num_segments_ ? segment_at_(s) : Segment{0, 0, -1};
    }
    tiles_before_ += tiles_;
MEGAMOE_UNROLL
    for (uint32_t j = 0; j < kLookahead; ++j) {
      ++segment_;
      if (segment_ >= num_segments_) return;
      set_current(next[j]);
      if (j + 1 == kLookahead || index < tiles_before_ + tiles_) return;
      tiles_before_ += tiles_;
    }
  }

  MEGAMOE_HD void set_current(const Segment& segment) {
    current_ = segment;
    const uint32_t rows = current_.row_end > current_.row_begin ? current_.row_end - current_.row_begin : 0;
    segment_block_m_ = segment_block_m(rows, block_m_, narrow_m_);
    m_blocks_ = ceil_div<uint32_t>(rows, segment_block_m_);
    tiles_ = m_blocks_ * num_n_blocks_;
  }

  SegmentAt segment_at_;
  uint32_t num_segments_;
  uint32_t block_m_;
  uint32_t narrow_m_;
  uint32_t num_n_blocks_;
  uint32_t band_;
  uint32_t pair_;
  uint32_t segment_ = 0;
  uint32_t tiles_before_ = 0;
  uint32_t segment_block_m_ = 0;
  uint32_t m_blocks_ = 0;
  uint32_t tiles_ = 0;
  Segment current_{0, 0, -1};
};

// Dense and contiguous layouts: one grid of ceil(M / BLOCK_M) x ceil(N / BLOCK_N) tiles.
MEGAMOE_HD bool dense_tile(uint32_t index, uint32_t m, uint32_t block_m, uint32_t num_n_blocks, uint32_t band,
                           TileWork& work, uint32_t pair = 1) {
  const uint32_t m_blocks = ceil_div<uint32_t>(m, block_m);
  if (index >= m_blocks * num_n_blocks) return false;
  const TileCoord t = swizzle_tile_grouped(index, m_blocks, num_n_blocks, band, pair);
  work.row_begin = t.m_block * block_m;
  work.row_end = sched_min(m, work.row_begin + block_m);
  work.n_block = t.n_block;
  work.group = 0;
  work.block_rows = block_m;
  return true;
}

// The portable cluster size of SM90: the most CTAs one tile is split over.
constexpr uint32_t kGemmMaxKSplits = 8;

struct IndexRange {
  uint32_t begin;
  uint32_t end;
};

// Split-K (the SplitK layout, docs/NUMERICS.md section 3): a launch with `splits` > 1 runs each tile
// on a cluster of `splits` CTAs, CTA `rank` of the cluster accumulating the K blocks
// [num_kb * rank / splits, num_kb * (rank + 1) / splits) (possibly none when splits > num_kb); the
// cluster then sums the partial tiles in rank order (split_k.cuh). Every CTA gets exactly one tile:
// the grid is tiles * splits, cluster c of it takes tile c.
MEGAMOE_HD IndexRange split_k_range(uint32_t num_kb, uint32_t rank, uint32_t splits) {
  const uint64_t kb = num_kb;
  return {static_cast<uint32_t>(kb * rank / splits), static_cast<uint32_t>(kb * (rank + 1) / splits)};
}

// The tile index CTA `cta` of a grid of `grid` CTAs asks for at its `iteration`-th step: the
// `splits` CTAs of a cluster ask for the same tiles (splits = 1: the persistent walk c, c + grid, ...).
MEGAMOE_HD uint32_t split_k_tile_index(uint32_t cta, uint32_t iteration, uint32_t grid, uint32_t splits) {
  return cta / splits + iteration * (grid / splits);
}

// The columns a cluster rank owns after the reduction: chunks of 8 columns [begin, end) of a
// BLOCK_N-wide tile (each thread's fragment holds block_n / 8 such chunks). splits divides block_n / 8.
MEGAMOE_HD IndexRange split_k_owned_chunks(uint32_t block_n, uint32_t rank, uint32_t splits) {
  const uint32_t per = block_n / 8 / splits;
  return {rank * per, (rank + 1) * per};
}

// The expert of a contiguous-layout tile: the largest valid index among its rows (rows hold one
// expert or -1, so this is that expert); -1 when every row is padding. Indices outside
// [-1, num_groups) count as -1 (the row is zeroed).
MEGAMOE_HD int32_t contiguous_row_group(int32_t index, uint32_t num_groups) {
  return index >= 0 && static_cast<uint32_t>(index) < num_groups ? index : -1;
}

}  // namespace megamoe::cuda::sm90
