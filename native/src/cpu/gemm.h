// Block-scaled FP8 GEMMs with BF16 output (docs/NUMERICS.md section 3): dense and the grouped
// layouts. Index tensors are validated before anything is written.
#pragma once

#include "core/backend.h"
#include "cpu/thread_pool.h"

namespace megamoe::cpu {

void gemm_dense(ThreadPool& pool, const ScaledTensor& a, const ScaledTensor& b, const Tensor& d);
void gemm_contiguous(ThreadPool& pool, const ScaledTensor& a, const ScaledTensor& b, const Tensor& m_indices,
                     const Tensor& d);
void gemm_offsets(ThreadPool& pool, const ScaledTensor& a, const ScaledTensor& b, const Tensor& offsets,
                  const Tensor& d);
void gemm_masked(ThreadPool& pool, const ScaledTensor& a, const ScaledTensor& b, const Tensor& masked_m,
                 const Tensor& d);

}  // namespace megamoe::cpu
