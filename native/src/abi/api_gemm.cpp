// Operations 3-5: block-scaled FP8 GEMMs, dense and grouped (contiguous, offsets, masked).
#include "abi/guard.h"
#include "abi/operands.h"

using namespace megamoe;

namespace {

// d [rows..., N] BF16 for activations `a` and weights `b`; must not overlap any input.
Tensor check_output(const TensorChecker& check, const megamoe_tensor_t* d, const char* layout,
                    const ScaledTensor& a, const ScaledTensor& b) {
  const Tensor out = check.tensor("d", d, {MEGAMOE_DTYPE_BF16}, layout);
  for (int32_t i = 0; i + 1 < out.rank; ++i) expect_dim("d", out, i, a.data.shape[i], "the rows of 'a'");
  expect_dim("d", out, out.rank - 1, b.data.shape[b.data.rank - 2], "N, the rows of each expert of 'b'");
  expect_disjoint("d", out, {{"a", a.data}, {"a_scales", a.scales}, {"b", b.data}, {"b_scales", b.scales}});
  return out;
}

}  // namespace

extern "C" {

MEGAMOE_API megamoe_status_t megamoe_gemm_dense(megamoe_context_t context, const megamoe_tensor_t* a,
                                                const megamoe_tensor_t* a_scales, const megamoe_tensor_t* b,
                                                const megamoe_tensor_t* b_scales, const megamoe_tensor_t* d,
                                                void* stream) {
  return guarded(__func__, [&] {
    auto call = enter(context);
    const ScaledTensor at = check_activations(call.check, a, a_scales, "[M, K]", "[M, K/128]");
    const ScaledTensor bt = check_weights(call.check, b, b_scales, false, at.data.shape[1]);
    const Tensor dt = check_output(call.check, d, "[M, N]", at, bt);
    if (dt.numel() == 0) return;
    call.backend.gemm_dense(at, bt, dt, stream);
  });
}

MEGAMOE_API megamoe_status_t megamoe_gemm_grouped_contiguous(megamoe_context_t context, const megamoe_tensor_t* a,
                                                             const megamoe_tensor_t* a_scales,
                                                             const megamoe_tensor_t* b,
                                                             const megamoe_tensor_t* b_scales,
                                                             const megamoe_tensor_t* m_indices,
                                                             const megamoe_tensor_t* d, void* stream) {
  return guarded(__func__, [&] {
    auto call = enter(context);
    const ScaledTensor at = check_activations(call.check, a, a_scales, "[M, K]", "[M, K/128]");
    const ScaledTensor bt = check_weights(call.check, b, b_scales, true, at.data.shape[1]);
    const Tensor indices = call.check.tensor("m_indices", m_indices, {MEGAMOE_DTYPE_INT32}, "[M]");
    expect_dim("m_indices", indices, 0, at.data.shape[0], "M, the rows of 'a'");
    const Tensor dt = check_output(call.check, d, "[M, N]", at, bt);
    expect_disjoint("d", dt, {{"m_indices", indices}});
    if (dt.numel() == 0) return;
    call.backend.gemm_contiguous(at, bt, indices, dt, stream);
  });
}

MEGAMOE_API megamoe_status_t megamoe_gemm_grouped_offsets(megamoe_context_t context, const megamoe_tensor_t* a,
                                                          const megamoe_tensor_t* a_scales,
                                                          const megamoe_tensor_t* b,
                                                          const megamoe_tensor_t* b_scales,
                                                          const megamoe_tensor_t* offsets, const megamoe_tensor_t* d,
                                                          void* stream) {
  return guarded(__func__, [&] {
    auto call = enter(context);
    const ScaledTensor at = check_activations(call.check, a, a_scales, "[M, K]", "[M, K/128]");
    const ScaledTensor bt = check_weights(call.check, b, b_scales, true, at.data.shape[1]);
    const Tensor offs = call.check.tensor("offsets", offsets, {MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64}, "[E + 1]");
    expect_dim("offsets", offs, 0, bt.data.shape[0] + 1, "E + 1, one more than the experts of 'b'");
    const Tensor dt = check_output(call.check, d, "[M, N]", at, bt);
    expect_disjoint("d", dt, {{"offsets", offs}});
    if (dt.numel() == 0) return;
    call.backend.gemm_offsets(at, bt, offs, dt, stream);
  });
}

MEGAMOE_API megamoe_status_t megamoe_gemm_grouped_masked(megamoe_context_t context, const megamoe_tensor_t* a,
                                                         const megamoe_tensor_t* a_scales, const megamoe_tensor_t* b,
                                                         const megamoe_tensor_t* b_scales,
                                                         const megamoe_tensor_t* masked_m, int64_t expected_m,
                                                         const megamoe_tensor_t* d, void* stream) {
  return guarded(__func__, [&] {
    auto call = enter(context);
    const ScaledTensor at = check_activations(call.check, a, a_scales, "[E, max_m, K]", "[E, max_m, K/128]");
    const ScaledTensor bt = check_weights(call.check, b, b_scales, true, at.data.shape[2]);
    expect_dim("a", at.data, 0, bt.data.shape[0], "E, the experts of 'b'");
    const Tensor counts = call.check.tensor("masked_m", masked_m, {MEGAMOE_DTYPE_INT32}, "[E]");
    expect_dim("masked_m", counts, 0, bt.data.shape[0], "E, the experts of 'b'");
    if (expected_m < 0) invalid("expected_m", "is ", expected_m, "; expected >= 0 (0 = unknown)");
    const Tensor dt = check_output(call.check, d, "[E, max_m, N]", at, bt);
    expect_disjoint("d", dt, {{"masked_m", counts}});
    if (dt.numel() == 0) return;
    call.backend.gemm_masked(at, bt, counts, expected_m, dt, stream);
  });
}

}  // extern "C"
