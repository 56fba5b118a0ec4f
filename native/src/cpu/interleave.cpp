#include "cpu/interleave.h"

#include <algorithm>
#include <cstring>

#include "core/layouts.h"

namespace megamoe::cpu {

void interleave_rows(ThreadPool& pool, const void* w, void* out, int64_t count, int64_t intermediate,
                     int64_t row_bytes, bool inverse) {
  const int64_t rows = 2 * intermediate;
  const auto* src = static_cast<const uint8_t*>(w);
  auto* dst = static_cast<uint8_t*>(out);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(row_bytes, 1));  // ~256 KiB
  pool.parallel_ranges(count * rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t flat = begin; flat < end; ++flat) {
      // Output row r of a matrix holds source row canonical_row(r) (forward) or interleaved_row(r).
      const int64_t r = flat % rows;
      const int64_t from = flat - r + (inverse ? interleaved_row(r, intermediate) : canonical_row(r, intermediate));
      std::memcpy(dst + flat * row_bytes, src + from * row_bytes, static_cast<size_t>(row_bytes));
    }
  });
}

void interleave_gate_up(ThreadPool& pool, const Tensor& w, const Tensor& out, bool inverse) {
  const int64_t count = w.rank == 3 ? w.dim(0) : 1;
  const int64_t rows = w.dim(w.rank - 2);
  interleave_rows(pool, w.data, out.data, count, rows / 2, w.dim(w.rank - 1) * dtype_size(w.dtype), inverse);
}

}  // namespace megamoe::cpu
