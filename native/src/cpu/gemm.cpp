#include "cpu/gemm.h"

#include <cstring>
#include <vector>

#include "core/formats.h"
#include "cpu/gemm_driver.h"
#include "cpu/index_checks.h"

namespace megamoe::cpu {

namespace {

// Row list over a [rows, K] FP8 matrix (leading dimensions flattened) and its [rows, K/128] scales.
std::vector<Fp8Row> all_rows(const ScaledTensor& a, int64_t rows) {
  const int64_t k = a.data.dim(a.data.rank - 1);
  std::vector<Fp8Row> list(static_cast<size_t>(rows));
  for (int64_t m = 0; m < rows; ++m)
    list[static_cast<size_t>(m)] = {a.data.as<const uint8_t>() + m * k, a.scales.as<const float>() + m * (k / kBlock)};
  return list;
}

// d row `row` (of n BF16 values), columns [col, col + kPanelCols) = bf16(acc).
void store_bf16(const Tensor& d, int64_t n, int64_t row, int64_t col, const float* acc) {
  uint16_t* out = d.as<uint16_t>() + row * n + col;
  for (int32_t c = 0; c < kPanelCols; ++c) out[c] = float_to_bf16(acc[c]);
}

void zero_rows(const Tensor& d, int64_t n, int64_t first, int64_t last) {
  if (last > first) std::memset(d.as<uint16_t>() + first * n, 0, static_cast<size_t>((last - first) * n) * 2);
}

int64_t columns(const ScaledTensor& b) { return b.data.dim(b.data.rank - 2); }

}  // namespace

void gemm_dense(ThreadPool& pool, const ScaledTensor& a, const ScaledTensor& b, const Tensor& d) {
  const int64_t m = a.data.dim(0), n = columns(b);
  const std::vector<Fp8Row> rows = all_rows(a, m);
  std::vector<RowGroup> groups;
  add_row_groups(groups, 0, 0, m);
  run_row_groups(pool, groups, rows.data(), b,
                 [&](int64_t row, int64_t col, const float* acc) { store_bf16(d, n, row, col, acc); });
}

void gemm_contiguous(ThreadPool& pool, const ScaledTensor& a, const ScaledTensor& b, const Tensor& m_indices,
                     const Tensor& d) {
  const auto experts = static_cast<int32_t>(b.data.dim(0));
  check_m_indices(m_indices, experts);
  const int64_t m = a.data.dim(0), n = columns(b);
  const std::vector<Fp8Row> all = all_rows(a, m);
  // The rows of each aligned block that belong to its expert, gathered; list row i is d row ids[i].
  std::vector<Fp8Row> rows;
  std::vector<int64_t> ids;
  std::vector<RowGroup> groups;
  rows.reserve(static_cast<size_t>(m));
  ids.reserve(static_cast<size_t>(m));
  for (int64_t first = 0; first < m; first += kBlock) {
    const int64_t begin = static_cast<int64_t>(ids.size());
    int64_t expert = -1;
    for (int64_t r = first; r < first + kBlock && r < m; ++r) {
      const int64_t e = index_at(m_indices, r);
      if (e == -1) {
        zero_rows(d, n, r, r + 1);
        continue;
      }
      expert = e;
      rows.push_back(all[static_cast<size_t>(r)]);
      ids.push_back(r);
    }
    if (expert != -1) add_row_groups(groups, expert, begin, static_cast<int64_t>(ids.size()) - begin);
  }
  run_row_groups(pool, groups, rows.data(), b, [&](int64_t row, int64_t col, const float* acc) {
    store_bf16(d, n, ids[static_cast<size_t>(row)], col, acc);
  });
}

void gemm_offsets(ThreadPool& pool, const ScaledTensor& a, const ScaledTensor& b, const Tensor& offsets,
                  const Tensor& d) {
  const int64_t m = a.data.dim(0), n = columns(b);
  check_offsets(offsets, m);
  const int64_t experts = offsets.dim(0) - 1;
  const std::vector<Fp8Row> rows = all_rows(a, m);
  std::vector<RowGroup> groups;
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t begin = index_at(offsets, e);
    add_row_groups(groups, e, begin, index_at(offsets, e + 1) - begin);
  }
  zero_rows(d, n, 0, index_at(offsets, 0));
  zero_rows(d, n, index_at(offsets, experts), m);
  run_row_groups(pool, groups, rows.data(), b,
                 [&](int64_t row, int64_t col, const float* acc) { store_bf16(d, n, row, col, acc); });
}

void gemm_masked(ThreadPool& pool, const ScaledTensor& a, const ScaledTensor& b, const Tensor& masked_m,
                 const Tensor& d) {
  const int64_t experts = a.data.dim(0), max_m = a.data.dim(1), n = columns(b);
  check_masked_m(masked_m, max_m);
  const std::vector<Fp8Row> rows = all_rows(a, experts * max_m);
  std::vector<RowGroup> groups;
  for (int64_t e = 0; e < experts; ++e) add_row_groups(groups, e, e * max_m, index_at(masked_m, e));
  run_row_groups(pool, groups, rows.data(), b,
                 [&](int64_t row, int64_t col, const float* acc) { store_bf16(d, n, row, col, acc); });
}

}  // namespace megamoe::cpu
