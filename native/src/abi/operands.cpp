#include "abi/operands.h"

namespace megamoe {

ScaledTensor check_activations(const TensorChecker& check, const megamoe_tensor_t* a,
                               const megamoe_tensor_t* a_scales, const char* layout, const char* scales_layout) {
  ScaledTensor out;
  out.data = check.tensor("a", a, {MEGAMOE_DTYPE_FP8_E4M3}, layout);
  const int32_t k_dim = out.data.rank - 1;
  expect_multiple_of_128("a", out.data, k_dim, "K");
  out.scales = check.tensor("a_scales", a_scales, {MEGAMOE_DTYPE_FP32}, scales_layout);
  for (int32_t i = 0; i < k_dim; ++i) expect_dim("a_scales", out.scales, i, out.data.shape[i], "the rows of 'a'");
  expect_dim("a_scales", out.scales, k_dim, out.data.shape[k_dim] / 128, "K / 128");
  return out;
}

ScaledTensor check_weights(const TensorChecker& check, const megamoe_tensor_t* b, const megamoe_tensor_t* b_scales,
                           bool grouped, int64_t k) {
  ScaledTensor out;
  out.data = check.tensor("b", b, {MEGAMOE_DTYPE_FP8_E4M3}, grouped ? "[E, N, K]" : "[N, K]");
  const int32_t n_dim = grouped ? 1 : 0;
  if (grouped && (out.data.shape[0] < 1 || out.data.shape[0] > 65536)) {
    invalid("b", "shape[0] (E, the number of experts) is ", out.data.shape[0], "; expected 1 to 65536");
  }
  expect_multiple_of_128("b", out.data, n_dim, "N");
  expect_dim("b", out.data, n_dim + 1, k, "K, the columns of 'a'");
  out.scales = check.tensor("b_scales", b_scales, {MEGAMOE_DTYPE_FP32}, grouped ? "[E, N/128, K/128]" : "[N/128, K/128]");
  if (grouped) expect_dim("b_scales", out.scales, 0, out.data.shape[0], "E, the experts of 'b'");
  expect_dim("b_scales", out.scales, n_dim, out.data.shape[n_dim] / 128, "N / 128");
  expect_dim("b_scales", out.scales, n_dim + 1, k / 128, "K / 128");
  return out;
}

}  // namespace megamoe
