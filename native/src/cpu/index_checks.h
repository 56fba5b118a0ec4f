// Index data lives on the host for the CPU backend, so it is validated in full before any output
// is written (docs/NUMERICS.md section 3). Messages follow the ABI's
// "argument '<name>': <problem>" form with the offending position.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include "core/error.h"
#include "core/tensor.h"

namespace megamoe::cpu {

// Element i of an INT32 or INT64 tensor.
inline int64_t index_at(const Tensor& t, int64_t i) {
  return t.dtype == MEGAMOE_DTYPE_INT64 ? t.as<const int64_t>()[i] : t.as<const int32_t>()[i];
}

// The number of valid tokens: num_tokens[0] if given (0 <= it <= tokens), else tokens.
// `rows_of` names the argument whose rows are the tokens ('a', 'x').
int64_t checked_num_tokens(const std::optional<Tensor>& num_tokens, int64_t tokens, const char* rows_of);
// topk_idx [T, top_k]: rows t < tokens hold -1 or an expert in [0, num_experts).
void check_topk_idx(const Tensor& topk_idx, int64_t tokens, int32_t num_experts);
// m_indices [M]: -1 or an expert in [0, num_experts); one expert per aligned block of 128 rows.
void check_m_indices(const Tensor& m_indices, int32_t num_experts);
// offsets [E + 1]: non-decreasing, offsets[0] >= 0, offsets[E] <= rows.
void check_offsets(const Tensor& offsets, int64_t rows);
// masked_m [E]: each in [0, max_m].
void check_masked_m(const Tensor& masked_m, int64_t max_m);

}  // namespace megamoe::cpu
