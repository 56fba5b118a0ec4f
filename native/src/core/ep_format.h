// The wire format of expert-parallel dispatch and combine (docs/EP.md): fixed-size regions, one per
// peer rank, so every exchange moves a byte count the host knows without reading device data (no host
// synchronization; CUDA-graph capturable).
//
// Dispatch region (rank r -> rank p): a header, then up to `capacity` records, one per token of rank r
// with at least one slot on an expert of rank p, in token order:
//   FP8 row [H] | scales [H/128] f32 | local topk_idx [k] i32 | topk_weights [k] f32 | padding to 16 bytes
// Return region (rank p -> rank r): a header, then one float32 row [H] per record rank r sent to p, in
// record order: the sum over the token's slots on p's experts.
// The index math is shared by host code and kernels (MEGAMOE_HD).
#pragma once

#include <cstdint>

#include "core/host_device.h"
#include "core/int_math.h"

namespace megamoe {

// The header that starts every region. `count` is the number of records (dispatch regions; return
// regions leave it 0); `status` is a megamoe_status_t, nonzero when the sender failed and the
// region's rows are missing.
struct EpRegionHeader {
  int32_t count;
  int32_t status;
  int32_t reserved[2];
};
static_assert(sizeof(EpRegionHeader) == 16, "regions keep their rows 16-byte aligned");
constexpr int64_t kEpHeaderBytes = sizeof(EpRegionHeader);

// Sizes of one rank's exchange buffers; every rank of a communicator has the same.
struct EpGeometry {
  int32_t world_size = 0;  // W
  int32_t top_k = 0;       // k
  int64_t hidden = 0;      // H, a multiple of 128
  int64_t capacity = 0;    // C, max_tokens_per_rank: records a region holds

  MEGAMOE_HD int64_t scale_count() const { return hidden / 128; }
  // Byte offsets within a record.
  MEGAMOE_HD int64_t scales_offset() const { return hidden; }
  MEGAMOE_HD int64_t index_offset() const { return hidden + 4 * scale_count(); }
  MEGAMOE_HD int64_t weights_offset() const { return index_offset() + 4 * int64_t{top_k}; }
  MEGAMOE_HD int64_t record_bytes() const { return ceil_div<int64_t>(weights_offset() + 4 * int64_t{top_k}, 16) * 16; }
  MEGAMOE_HD int64_t region_bytes() const { return kEpHeaderBytes + capacity * record_bytes(); }
  MEGAMOE_HD int64_t return_row_bytes() const { return 4 * hidden; }
  MEGAMOE_HD int64_t return_region_bytes() const { return kEpHeaderBytes + capacity * return_row_bytes(); }
  // Tokens a rank can receive (R_max), and rows of the expanded format (one per local slot).
  MEGAMOE_HD int64_t max_received() const { return int64_t{world_size} * capacity; }
  MEGAMOE_HD int64_t max_expanded() const { return max_received() * top_k; }
};

// The rank that owns global expert `expert` in [0, E): rank_begin [W + 1] holds the first expert of
// every rank and E last (the ranges partition [0, E) in rank order).
MEGAMOE_HD int32_t ep_owner(const int32_t* rank_begin, int32_t world_size, int64_t expert) {
  int32_t lo = 0, hi = world_size - 1;
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) / 2;
    if (rank_begin[mid] <= expert) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

}  // namespace megamoe
