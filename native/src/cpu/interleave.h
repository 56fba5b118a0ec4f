// Gate/up row interleave of w13 (operation 7) and its inverse, for any dtype.
#pragma once

#include "core/backend.h"
#include "cpu/thread_pool.h"

namespace megamoe::cpu {

// w and out are [E, 2I, H] or [2I, H] of the same dtype and must not overlap. out row
// interleaved_row(r) = w row r, or with `inverse` out row r = w row interleaved_row(r).
void interleave_gate_up(ThreadPool& pool, const Tensor& w, const Tensor& out, bool inverse);

// The same on raw rows: `count` matrices of 2 * intermediate rows of row_bytes bytes each.
void interleave_rows(ThreadPool& pool, const void* w, void* out, int64_t count, int64_t intermediate,
                     int64_t row_bytes, bool inverse);

}  // namespace megamoe::cpu
