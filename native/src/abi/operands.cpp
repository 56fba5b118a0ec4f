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

namespace {

// One projection's weights [E, rows, cols]: FP8 with scales, or BF16/FP32 without.
void check_projection(const TensorChecker& check, const char* name, const char* scales_name,
                      const megamoe_tensor_t* w, const megamoe_tensor_t* w_scales, int64_t experts,
                      const char* experts_meaning, int64_t rows, int64_t cols, const char* layout,
                      const char* scales_layout, Tensor& out_w, std::optional<Tensor>& out_scales) {
  out_w = check.tensor(name, w, {MEGAMOE_DTYPE_FP8_E4M3, MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}, layout);
  expect_dim(name, out_w, 0, experts, experts_meaning);
  expect_dim(name, out_w, 1, rows, layout);
  expect_dim(name, out_w, 2, cols, layout);
  if (out_w.dtype == MEGAMOE_DTYPE_FP8_E4M3) {
    if (w_scales == nullptr) invalid(scales_name, "is NULL but '", name, "' is FP8; expected ", scales_layout);
    out_scales = check.tensor(scales_name, w_scales, {MEGAMOE_DTYPE_FP32}, scales_layout);
    expect_dim(scales_name, *out_scales, 0, experts, experts_meaning);
    expect_dim(scales_name, *out_scales, 1, rows / 128, scales_layout);
    expect_dim(scales_name, *out_scales, 2, cols / 128, scales_layout);
  } else if (w_scales != nullptr) {
    invalid(scales_name, "must be NULL when '", name, "' is ", dtype_name(out_w.dtype),
            " (the library quantizes it)");
  }
}

}  // namespace

MoeWeights check_moe_weights(const TensorChecker& check, const MoeLayerSpec& spec, const char* experts_meaning,
                             const megamoe_tensor_t* w13, const megamoe_tensor_t* w13_scales,
                             const megamoe_tensor_t* w2, const megamoe_tensor_t* w2_scales) {
  MoeWeights weights;
  check_projection(check, "w13", "w13_scales", w13, w13_scales, spec.num_experts, experts_meaning,
                   2 * spec.intermediate, spec.hidden, "[E, 2I, H]", "[E, 2I/128, H/128]", weights.w13,
                   weights.w13_scales);
  check_projection(check, "w2", "w2_scales", w2, w2_scales, spec.num_experts, experts_meaning, spec.hidden,
                   spec.intermediate, "[E, H, I]", "[E, H/128, I/128]", weights.w2, weights.w2_scales);
  return weights;
}

TokenArgs check_tokens(const TensorChecker& check, const megamoe_tensor_t* x, const megamoe_tensor_t* x_scales,
                       const megamoe_tensor_t* topk_idx, const megamoe_tensor_t* topk_weights, int64_t hidden,
                       int32_t top_k, int64_t max_tokens, const char* limit) {
  TokenArgs args;
  args.x = check.tensor("x", x, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP8_E4M3}, "[T, H]");
  const int64_t tokens = args.x.shape[0];
  expect_dim("x", args.x, 1, hidden, "H, config.hidden");
  if (tokens > max_tokens) invalid("x", "has ", tokens, " tokens; ", limit, " = ", max_tokens);
  if (args.x.dtype == MEGAMOE_DTYPE_FP8_E4M3) {
    args.x_scales = check.tensor("x_scales", x_scales, {MEGAMOE_DTYPE_FP32}, "[T, H/128]");
    expect_dim("x_scales", *args.x_scales, 0, tokens, "T, the rows of 'x'");
    expect_dim("x_scales", *args.x_scales, 1, hidden / 128, "H / 128");
  } else if (x_scales != nullptr) {
    invalid("x_scales", "must be NULL when 'x' is BF16 (the layer quantizes it)");
  }
  args.topk_idx = check.tensor("topk_idx", topk_idx, {MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64}, "[T, top_k]");
  expect_dim("topk_idx", args.topk_idx, 0, tokens, "T, the rows of 'x'");
  expect_dim("topk_idx", args.topk_idx, 1, top_k, "config.top_k");
  args.topk_weights = check.tensor("topk_weights", topk_weights, {MEGAMOE_DTYPE_FP32}, "[T, top_k]");
  expect_dim("topk_weights", args.topk_weights, 0, tokens, "T, the rows of 'x'");
  expect_dim("topk_weights", args.topk_weights, 1, top_k, "config.top_k");
  return args;
}

}  // namespace megamoe
