#include "cpu/index_checks.h"

#include "cpu/block_scaled_dot.h"

namespace megamoe::cpu {

int64_t checked_num_tokens(const std::optional<Tensor>& num_tokens, int64_t tokens, const char* rows_of) {
  if (!num_tokens) return tokens;
  const int64_t n = num_tokens->as<const int32_t>()[0];
  if (n < 0) invalid("num_tokens", "num_tokens[0] = ", n, " is negative");
  if (n > tokens)
    invalid("num_tokens", "num_tokens[0] = ", n, " exceeds T = ", tokens, ", the rows of '", rows_of, "'");
  return n;
}

void check_topk_idx(const Tensor& topk_idx, int64_t tokens, int32_t num_experts) {
  const int64_t top_k = topk_idx.dim(1);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < top_k; ++j) {
      const int64_t e = index_at(topk_idx, t * top_k + j);
      if (e < -1 || e >= num_experts)
        invalid("topk_idx", "topk_idx[", t, ", ", j, "] = ", e, " is out of range [-1, ", num_experts, ")");
    }
  }
}

void check_m_indices(const Tensor& m_indices, int32_t num_experts) {
  const int64_t rows = m_indices.dim(0);
  for (int64_t m = 0; m < rows; ++m) {
    const int64_t e = index_at(m_indices, m);
    if (e < -1 || e >= num_experts)
      invalid("m_indices", "m_indices[", m, "] = ", e, " is out of range [-1, ", num_experts, ")");
  }
  for (int64_t first = 0; first < rows; first += kBlock) {
    const int64_t last = first + kBlock < rows ? first + kBlock : rows;
    int64_t expert = -1;
    for (int64_t m = first; m < last; ++m) {
      const int64_t e = index_at(m_indices, m);
      if (e == -1) continue;
      if (expert != -1 && e != expert)
        invalid("m_indices", "rows ", first, "..", last - 1, " mix experts ", expert, " and ", e,
                "; each aligned block of 128 rows may hold one expert (and -1 padding rows)");
      expert = e;
    }
  }
}

void check_offsets(const Tensor& offsets, int64_t rows) {
  const int64_t experts = offsets.dim(0) - 1;
  const int64_t first = index_at(offsets, 0);
  if (first < 0) invalid("offsets", "offsets[0] = ", first, " is negative");
  for (int64_t e = 1; e <= experts; ++e) {
    const int64_t previous = index_at(offsets, e - 1), current = index_at(offsets, e);
    if (current < previous)
      invalid("offsets", "offsets must be non-decreasing: offsets[", e, "] = ", current, " < offsets[", e - 1,
              "] = ", previous);
  }
  const int64_t last = index_at(offsets, experts);
  if (last > rows) invalid("offsets", "offsets[", experts, "] = ", last, " exceeds M = ", rows, ", the rows of 'a'");
}

void check_masked_m(const Tensor& masked_m, int64_t max_m) {
  for (int64_t e = 0; e < masked_m.dim(0); ++e) {
    const int64_t m = index_at(masked_m, e);
    if (m < 0) invalid("masked_m", "masked_m[", e, "] = ", m, " is negative");
    if (m > max_m) invalid("masked_m", "masked_m[", e, "] = ", m, " exceeds max_m = ", max_m);
  }
}

}  // namespace megamoe::cpu
