// The loop shared by every GEMM path: groups of A rows, each multiplied by one expert's B, split
// into tasks of (group, range of 16-column panels). Each output element belongs to exactly one task
// and is computed by accumulate_panel alone, so results do not depend on scheduling.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "cpu/block_scaled_dot.h"
#include "cpu/thread_pool.h"

namespace megamoe::cpu {

// rows[first, first + count) of a row list, all multiplied by expert `expert` of B.
struct RowGroup {
  int64_t expert;
  int64_t first;
  int32_t count;  // 1..kMaxPanelRows
};

// Appends groups covering list rows [first, first + count) of `expert`.
inline void add_row_groups(std::vector<RowGroup>& groups, int64_t expert, int64_t first, int64_t count) {
  for (int64_t r = 0; r < count; r += kMaxPanelRows)
    groups.push_back({expert, first + r, static_cast<int32_t>(std::min<int64_t>(kMaxPanelRows, count - r))});
}

// Panels per task: up to 8 (one 128-column scale block), fewer while that would leave threads idle.
inline int64_t panels_per_task(int64_t groups, int64_t panels, int32_t threads) {
  int64_t per = 8;
  while (per > 1 && groups * ((panels + per - 1) / per) < 4 * int64_t{threads}) per /= 2;
  return per;
}

// B is [E, N, K] (or [N, K], expert 0) with scales [E, N/128, K/128]. For every group row and
// panel, store(list_row, column, acc) receives the kPanelCols float32 accumulators of
// rows[list_row] against B columns [column, column + kPanelCols).
template <typename Store>
void run_row_groups(ThreadPool& pool, const std::vector<RowGroup>& groups, const Fp8Row* rows, const ScaledTensor& b,
                    Store&& store) {
  const int64_t n = b.data.dim(b.data.rank - 2), k = b.data.dim(b.data.rank - 1);
  const int64_t panels = n / kPanelCols;
  const int64_t per = panels_per_task(static_cast<int64_t>(groups.size()), panels, pool.size());
  const int64_t ranges = (panels + per - 1) / per;
  const auto* b_data = b.data.as<const uint8_t>();
  const auto* b_scales = b.scales.as<const float>();
  const int64_t scales_per_block_row = k / kBlock;
  pool.parallel_for(static_cast<int64_t>(groups.size()) * ranges, [&](int64_t task) {
    const RowGroup& group = groups[static_cast<size_t>(task / ranges)];
    const int64_t p0 = task % ranges * per, p1 = std::min(panels, p0 + per);
    alignas(64) float acc[kMaxPanelRows * kPanelCols];
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t col = p * kPanelCols;
      const int64_t row = group.expert * n + col;  // first B row of the panel
      accumulate_panel(rows + group.first, group.count, b_data + row * k,
                       b_scales + row / kBlock * scales_per_block_row, k, acc);
      for (int32_t r = 0; r < group.count; ++r) store(group.first + r, col, acc + r * kPanelCols);
    }
  });
}

}  // namespace megamoe::cpu
