// Row maps of the gate/up interleave of w13 (megamoe_interleave_gate_up). The SM90 fused layer
// wants each 8-column accumulator chunk to alternate gate and up so the activation runs in
// registers; the interleaved order is gate 0-7, up 0-7, gate 8-15, up 8-15, ...
// Rows count within one expert's [2I, H] matrix: canonical rows 0..I-1 are gate, I..2I-1 are up.
#pragma once

#include <cstdint>

#include "core/host_device.h"

namespace megamoe {

constexpr int64_t kInterleaveRows = 8;

// Position in the interleaved matrix of canonical row `row`.
MEGAMOE_HD int64_t interleaved_row(int64_t row, int64_t intermediate) {
  const bool up = row >= intermediate;
  const int64_t r = up ? row - intermediate : row;
  return (r / kInterleaveRows) * (2 * kInterleaveRows) + (up ? kInterleaveRows : 0) + r % kInterleaveRows;
}

// Canonical row held at position `row` of the interleaved matrix (inverse of interleaved_row).
MEGAMOE_HD int64_t canonical_row(int64_t row, int64_t intermediate) {
  const int64_t chunk = row / (2 * kInterleaveRows);
  const int64_t within = row % (2 * kInterleaveRows);
  const bool up = within >= kInterleaveRows;
  return (up ? intermediate : 0) + chunk * kInterleaveRows + within % kInterleaveRows;
}

}  // namespace megamoe
