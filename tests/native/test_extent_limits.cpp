// An empty tensor may not carry an absurd extent: the checks derive sizes from extents
// (ceil(K / 128)), and a [0, 2^63 - 1] descriptor made that arithmetic overflow (signed overflow,
// found by the transforms fuzz target; docs/RELIABILITY.md). Every extent is now capped at 2^48, like
// the element count, whatever the other extents are.
#include <limits>

#include "support/test_support.h"

namespace {

constexpr int64_t kHuge = std::numeric_limits<int64_t>::max();

// An empty descriptor; strides are set to 1 (an empty tensor's strides are not looked at), since the
// dense strides of these shapes would overflow.
megamoe_tensor_t empty_tensor(void* data, megamoe_dtype_t dtype, std::initializer_list<int64_t> shape) {
  megamoe_tensor_t t = mmt::make_tensor(data, dtype, {1});
  t.rank = static_cast<int32_t>(shape.size());
  int32_t i = 0;
  for (int64_t extent : shape) {
    t.shape[i] = extent;
    t.strides[i++] = 1;
  }
  return t;
}

TEST(ExtentLimits, EmptyTensorWithHugeExtentIsRejectedByName) {
  mmt::ScopedContext ctx;
  alignas(64) static unsigned char memory[256] = {};
  const megamoe_tensor_t out = empty_tensor(memory, MEGAMOE_DTYPE_BF16, {0, kHuge});
  const megamoe_tensor_t q = empty_tensor(memory, MEGAMOE_DTYPE_FP8_E4M3, {0, kHuge});
  const megamoe_tensor_t scales = empty_tensor(memory, MEGAMOE_DTYPE_FP32, {0, 1});
  EXPECT_EQ(megamoe_dequantize_activations(ctx, &q, &scales, &out, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(mmt::contains(mmt::last_error(), "argument 'out': shape[1]")) << mmt::last_error();
  EXPECT_TRUE(mmt::contains(mmt::last_error(), "no extent may exceed 2^48")) << mmt::last_error();
}

TEST(ExtentLimits, EmptyWeightsWithHugeExtentAreRejectedByName) {
  mmt::ScopedContext ctx;
  alignas(64) static unsigned char memory[256] = {};
  const megamoe_tensor_t w = empty_tensor(memory, MEGAMOE_DTYPE_FP32, {0, kHuge, 128});
  const megamoe_tensor_t q = empty_tensor(memory, MEGAMOE_DTYPE_FP8_E4M3, {0, kHuge, 128});
  const megamoe_tensor_t scales = empty_tensor(memory, MEGAMOE_DTYPE_FP32, {0, 1, 1});
  EXPECT_EQ(megamoe_quantize_weights(ctx, &w, &q, &scales, 0, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(mmt::contains(mmt::last_error(), "argument 'w': shape[1]")) << mmt::last_error();
}

TEST(ExtentLimits, ExtentOf2To48IsStillAccepted) {
  // The cap is on each extent, not a new limit on real tensors: an empty [0, 2^48] quantizes to nothing.
  mmt::ScopedContext ctx;
  alignas(64) static unsigned char memory[256] = {};
  const int64_t k = int64_t{1} << 48;
  const megamoe_tensor_t x = empty_tensor(memory, MEGAMOE_DTYPE_BF16, {0, k});
  const megamoe_tensor_t q = empty_tensor(memory, MEGAMOE_DTYPE_FP8_E4M3, {0, k});
  const megamoe_tensor_t scales = empty_tensor(memory, MEGAMOE_DTYPE_FP32, {0, k / 128});
  EXPECT_EQ(megamoe_quantize_activations(ctx, &x, &q, &scales, 0, nullptr), MEGAMOE_SUCCESS) << mmt::last_error();
}

}  // namespace
