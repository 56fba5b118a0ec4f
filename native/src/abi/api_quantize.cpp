// Operations 1 and 2: FP8 block quantization of activations (1x128) and weights (128x128).
#include "abi/guard.h"
#include "abi/operands.h"

using namespace megamoe;

namespace {

bool ue8m0_flag(uint32_t flags) {
  if ((flags & ~MEGAMOE_QUANT_UE8M0_SCALES) != 0) {
    invalid("flags", "unknown bits 0x", std::hex, flags & ~MEGAMOE_QUANT_UE8M0_SCALES,
            " (only MEGAMOE_QUANT_UE8M0_SCALES is defined)");
  }
  return (flags & MEGAMOE_QUANT_UE8M0_SCALES) != 0;
}

// q [M, K] FP8 and scales [M, ceil(K/128)] matching `values` [M, K].
ScaledTensor check_activation_pair(const TensorChecker& check, const Tensor& values, const char* values_name,
                                   const megamoe_tensor_t* q, const megamoe_tensor_t* scales) {
  ScaledTensor out;
  out.data = check.tensor("q", q, {MEGAMOE_DTYPE_FP8_E4M3}, "[M, K]");
  expect_dim("q", out.data, 0, values.shape[0], cat("M, the rows of '", values_name, "'").c_str());
  expect_dim("q", out.data, 1, values.shape[1], cat("K, the columns of '", values_name, "'").c_str());
  out.scales = check.tensor("scales", scales, {MEGAMOE_DTYPE_FP32}, "[M, ceil(K/128)]");
  expect_dim("scales", out.scales, 0, values.shape[0], "M");
  expect_dim("scales", out.scales, 1, ceil_div<int64_t>(values.shape[1], 128), "ceil(K / 128)");
  return out;
}

// q FP8 of the shape of `values` ([N, K] or [E, N, K]) and scales [E?, ceil(N/128), ceil(K/128)].
ScaledTensor check_weight_pair(const TensorChecker& check, const Tensor& values, const char* values_name,
                               const megamoe_tensor_t* q, const megamoe_tensor_t* scales) {
  const bool grouped = values.rank == 3;
  ScaledTensor out;
  out.data = check.tensor("q", q, {MEGAMOE_DTYPE_FP8_E4M3}, grouped ? "[E, N, K]" : "[N, K]");
  for (int32_t i = 0; i < values.rank; ++i) {
    expect_dim("q", out.data, i, values.shape[i], cat("the same shape as '", values_name, "'").c_str());
  }
  out.scales = check.tensor("scales", scales, {MEGAMOE_DTYPE_FP32},
                            grouped ? "[E, ceil(N/128), ceil(K/128)]" : "[ceil(N/128), ceil(K/128)]");
  const int32_t n_dim = grouped ? 1 : 0;
  if (grouped) expect_dim("scales", out.scales, 0, values.shape[0], "E");
  expect_dim("scales", out.scales, n_dim, ceil_div<int64_t>(values.shape[n_dim], 128), "ceil(N / 128)");
  expect_dim("scales", out.scales, n_dim + 1, ceil_div<int64_t>(values.shape[n_dim + 1], 128), "ceil(K / 128)");
  return out;
}

// Both activation quantizers; `nonfinite_rows` is NULL for the unchecked one.
void quantize_activations_entry(megamoe_context_t context, const megamoe_tensor_t* x, const megamoe_tensor_t* q,
                          const megamoe_tensor_t* scales, uint32_t flags, const megamoe_tensor_t* nonfinite_rows,
                          void* stream) {
  auto call = enter(context);
  const bool ue8m0 = ue8m0_flag(flags);
  const Tensor xt = call.check.tensor("x", x, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}, "[M, K]");
  const ScaledTensor out = check_activation_pair(call.check, xt, "x", q, scales);
  const std::optional<Tensor> count =
      call.check.optional_tensor("nonfinite_rows", nonfinite_rows, {MEGAMOE_DTYPE_INT32}, "[1]");
  if (count) expect_dim("nonfinite_rows", *count, 0, 1, "a single count");
  expect_disjoint("q", out.data, {{"x", xt}});
  expect_disjoint("scales", out.scales, {{"x", xt}, {"q", out.data}});
  if (count) expect_disjoint("nonfinite_rows", *count, {{"x", xt}, {"q", out.data}, {"scales", out.scales}});
  if (xt.numel() == 0) return;
  call.backend.quantize_activations(xt, out, ue8m0, count, stream);
}

}  // namespace

extern "C" {

MEGAMOE_API megamoe_status_t megamoe_quantize_activations(megamoe_context_t context, const megamoe_tensor_t* x,
                                                          const megamoe_tensor_t* q, const megamoe_tensor_t* scales,
                                                          uint32_t flags, void* stream) {
  return guarded(__func__, [&] { quantize_activations_entry(context, x, q, scales, flags, nullptr, stream); });
}

MEGAMOE_API megamoe_status_t megamoe_quantize_activations_checked(megamoe_context_t context,
                                                                  const megamoe_tensor_t* x,
                                                                  const megamoe_tensor_t* q,
                                                                  const megamoe_tensor_t* scales, uint32_t flags,
                                                                  const megamoe_tensor_t* nonfinite_rows,
                                                                  void* stream) {
  return guarded(__func__, [&] { quantize_activations_entry(context, x, q, scales, flags, nonfinite_rows, stream); });
}

MEGAMOE_API megamoe_status_t megamoe_dequantize_activations(megamoe_context_t context, const megamoe_tensor_t* q,
                                                            const megamoe_tensor_t* scales,
                                                            const megamoe_tensor_t* out, void* stream) {
  return guarded(__func__, [&] {
    auto call = enter(context);
    const Tensor result = call.check.tensor("out", out, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}, "[M, K]");
    const ScaledTensor in = check_activation_pair(call.check, result, "out", q, scales);
    expect_disjoint("out", result, {{"q", in.data}, {"scales", in.scales}});
    if (result.numel() == 0) return;
    call.backend.dequantize_activations(in, result, stream);
  });
}

MEGAMOE_API megamoe_status_t megamoe_quantize_weights(megamoe_context_t context, const megamoe_tensor_t* w,
                                                      const megamoe_tensor_t* q, const megamoe_tensor_t* scales,
                                                      uint32_t flags, void* stream) {
  return guarded(__func__, [&] {
    auto call = enter(context);
    const bool ue8m0 = ue8m0_flag(flags);
    const Tensor wt = call.check.tensor("w", w, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}, "[N, K]", "[E, N, K]");
    const ScaledTensor out = check_weight_pair(call.check, wt, "w", q, scales);
    expect_disjoint("q", out.data, {{"w", wt}});
    expect_disjoint("scales", out.scales, {{"w", wt}, {"q", out.data}});
    if (wt.numel() == 0) return;
    call.backend.quantize_weights(wt, out, ue8m0, stream);
  });
}

MEGAMOE_API megamoe_status_t megamoe_dequantize_weights(megamoe_context_t context, const megamoe_tensor_t* q,
                                                        const megamoe_tensor_t* scales, const megamoe_tensor_t* out,
                                                        void* stream) {
  return guarded(__func__, [&] {
    auto call = enter(context);
    const Tensor result =
        call.check.tensor("out", out, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}, "[N, K]", "[E, N, K]");
    const ScaledTensor in = check_weight_pair(call.check, result, "out", q, scales);
    expect_disjoint("out", result, {{"q", in.data}, {"scales", in.scales}});
    if (result.numel() == 0) return;
    call.backend.dequantize_weights(in, result, stream);
  });
}

}  // extern "C"
