// The persistent tile scheduler of the SM90 GEMM kernel: CTA c walks the tiles c, c + gridDim.x, ...
// of the numbering in schedule.h (the index math, CPU-tested); producer and math warps each run one
// and agree on every tile. Plus the contiguous layout's per-tile group lookup.
#pragma once

#include <cstdint>

#include "cuda/sm90/gemm/params.h"
#include "cuda/sm90/gemm/schedule.h"

namespace megamoe::cuda::sm90 {

// Segment sources for the grouped schedulers (plain loads: layout data is read-only here).
struct MaskedSegments {
  const int32_t* masked_m;
  uint32_t max_m;
  MEGAMOE_HD Segment operator()(uint32_t e) const { return masked_segment(e, masked_m[e], max_m); }
};

struct OffsetAt {
  const void* offsets;
  bool is64;
  MEGAMOE_HD int64_t operator()(uint32_t i) const {
    return is64 ? static_cast<const int64_t*>(offsets)[i] : static_cast<int64_t>(static_cast<const int32_t*>(offsets)[i]);
  }
};

struct OffsetSegments {
  OffsetAt at;
  uint32_t groups;
  uint32_t rows;
  MEGAMOE_HD Segment operator()(uint32_t s) const { return offsets_segment(s, groups, rows, at); }
};

// The non-empty segments only, from the routing table's list (routing.cuh): empty experts add no
// tiles, so skipping them keeps the tile numbering and spares the walk over every expert.
struct RoutedSegments {
  const int32_t* offsets;  // the routing table: offsets [groups + 2], then [count, non-empty segment...]
  uint32_t groups;
  MEGAMOE_HD Segment operator()(uint32_t s) const {
    const uint32_t e = static_cast<uint32_t>(offsets[groups + 3 + s]);
    return routed_segment(e, groups, offsets[e], offsets[e + 1]);
  }
};

template <GemmKind kKind>
struct SegmentsFor {
  using type = MaskedSegments;  // unused for dense / contiguous
};
template <>
struct SegmentsFor<GemmKind::Offsets> {
  using type = OffsetSegments;
};
template <>
struct SegmentsFor<GemmKind::Routed> {
  using type = RoutedSegments;
};

template <GemmKind kKind, uint32_t BM, uint32_t BN, uint32_t kMulticast>
class TileScheduler {
  using Segments = typename SegmentsFor<kKind>::type;

 public:
  __device__ explicit TileScheduler(const KernelParams& p)
      : rows_(p.layout.rows),
        n_blocks_(p.layout.n / BN),
        splits_(kKind == GemmKind::SplitK ? p.layout.k_splits : 1u),
        band_(p.layout.band),
        walker_(make_segments(p), num_segments(p), BM, p.layout.n / BN, p.layout.band, kMulticast,
                kKind == GemmKind::Routed ? p.routed.narrow_m : 0) {}

  __device__ bool next(TileWork& work) {
    if constexpr (kKind == GemmKind::SplitK) {
      // The splits CTAs of a cluster share its tile (schedule.h split_k_range).
      const uint32_t index = split_k_tile_index(blockIdx.x, iteration_++, gridDim.x, splits_);
      return dense_tile(index, rows_, BM, n_blocks_, band_, work, kMulticast);
    }
    const uint32_t index = blockIdx.x + iteration_++ * gridDim.x;
    if constexpr (kKind == GemmKind::Dense || kKind == GemmKind::Contiguous) {
      return dense_tile(index, rows_, BM, n_blocks_, band_, work, kMulticast);
    } else {
      return walker_.find(index, work);
    }
  }

 private:
  __device__ static Segments make_segments(const KernelParams& p) {
    if constexpr (kKind == GemmKind::Offsets) {
      return OffsetSegments{OffsetAt{p.layout.groups_data, p.layout.groups_int64}, p.layout.groups, p.layout.rows};
    } else if constexpr (kKind == GemmKind::Routed) {
      return RoutedSegments{static_cast<const int32_t*>(p.layout.groups_data), p.layout.groups};
    } else {
      return MaskedSegments{static_cast<const int32_t*>(p.layout.groups_data), p.layout.max_m};
    }
  }
  __device__ static uint32_t num_segments(const KernelParams& p) {
    if constexpr (kKind == GemmKind::Offsets) return p.layout.groups + 2;
    if constexpr (kKind == GemmKind::Masked) return p.layout.groups;
    if constexpr (kKind == GemmKind::Routed) {
      // The dropped slots (segment `groups`, last when present) count only where the epilogue writes them.
      const int32_t* active = static_cast<const int32_t*>(p.layout.groups_data) + p.layout.groups + 2;
      uint32_t count = static_cast<uint32_t>(active[0]);
      // The list's length is clamped to its room; its entries are the routing block's own, in [0, groups].
      if (count > p.layout.groups + 1) count = p.layout.groups + 1;
      if (!p.routed.dropped_segment && count > 0 && static_cast<uint32_t>(active[count]) == p.layout.groups) --count;
      return count;
    }
    return 0;  // the walker stays idle
  }

  uint32_t rows_;
  uint32_t n_blocks_;
  uint32_t splits_;
  uint32_t band_;
  uint32_t iteration_ = 0;
  SegmentWalker<Segments> walker_;
};

// Contiguous layout: the tile's expert and whether a warpgroup's 64 rows hold any valid row.
// Warp-collective: every lane of the calling warp must call it.
template <uint32_t BM>
__device__ __forceinline__ void contiguous_tile_groups(const int32_t* m_indices, uint32_t rows, uint32_t groups,
                                                       uint32_t row_begin, uint32_t lane, uint32_t wg,
                                                       int32_t& tile_group, int32_t& wg_group) {
  constexpr uint32_t kPerLane = BM / 32;
  int32_t v = -1;
#pragma unroll
  for (uint32_t j = 0; j < kPerLane; ++j) {
    const uint32_t row = row_begin + lane * kPerLane + j;
    if (row < rows) v = max(v, contiguous_row_group(__ldg(m_indices + row), groups));
  }
  tile_group = __reduce_max_sync(0xFFFFFFFFu, v);
  const bool mine = (lane * kPerLane) / 64 == wg;
  wg_group = __reduce_max_sync(0xFFFFFFFFu, mine ? v : -1);
}

}  // namespace megamoe::cuda::sm90
