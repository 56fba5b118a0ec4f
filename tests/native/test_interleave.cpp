// Gate/up 8-row interleave of w13 (megamoe_interleave_gate_up): rows gate 0-7, up 0-7, gate 8-15,
// up 8-15, ...; `inverse` undoes it. Every dtype, rank 2 and 3.
#include <cstdint>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "support/test_support.h"

namespace {

using mmt::GuardedOut;
using mmt::last_error;
using mmt::make_tensor;

struct Shape {
  int64_t E, I, H;  // E = 0: rank-2 [2I, H]
};
void PrintTo(const Shape& s, std::ostream* os) { *os << "E" << s.E << "_I" << s.I << "_H" << s.H; }

const char* dtype_name(megamoe_dtype_t d) {
  switch (d) {
    case MEGAMOE_DTYPE_FP8_E4M3: return "FP8";
    case MEGAMOE_DTYPE_BF16: return "BF16";
    case MEGAMOE_DTYPE_FP32: return "FP32";
    case MEGAMOE_DTYPE_INT32: return "INT32";
    case MEGAMOE_DTYPE_INT64: return "INT64";
  }
  return "?";
}

class Interleave : public ::testing::TestWithParam<std::tuple<Shape, megamoe_dtype_t>> {};

TEST_P(Interleave, MatchesDefinitionAndInverseRoundTrips) {
  const auto& [shape, dtype] = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  SCOPED_TRACE(std::string(dtype_name(dtype)) + " E=" + std::to_string(shape.E) + " I=" + std::to_string(shape.I) +
               " H=" + std::to_string(shape.H));
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const int64_t E = shape.E == 0 ? 1 : shape.E, I = shape.I, H = shape.H;
  const int64_t elem = mmt::dtype_bytes(dtype);
  const int64_t bytes = E * 2 * I * H * elem;
  std::vector<int64_t> dims = {2 * I, H};
  if (shape.E != 0) dims.insert(dims.begin(), E);

  // Random bit patterns: the transform moves bytes, it must not interpret them (NaNs included).
  mmt::HostVec<uint8_t> w(static_cast<std::size_t>(bytes));
  for (auto& b : w) b = static_cast<uint8_t>(rng.bits32());
  GuardedOut<uint8_t> fwd(bytes), back(bytes), inv_direct(bytes);
  const auto wt = make_tensor(w.data(), dtype, dims);
  const auto ft = make_tensor(fwd.data(), dtype, dims);
  const auto bt = make_tensor(back.data(), dtype, dims);
  const auto it = make_tensor(inv_direct.data(), dtype, dims);

  ASSERT_EQ(megamoe_interleave_gate_up(ctx, &wt, &ft, 0, nullptr), MEGAMOE_SUCCESS) << last_error();
  mmt::HostVec<uint8_t> want(static_cast<std::size_t>(bytes));
  mmt::ref_interleave_gate_up(w.data(), want.data(), E, I, H, elem, false);
  EXPECT_TRUE(mmt::bytes_equal(fwd.data(), want.data(), bytes)) << "forward interleave";
  EXPECT_TRUE(fwd.guard_intact());

  // Spot-check the definition directly on row indices (independent of the support helper).
  const int64_t row = H * elem;
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t b = 0; b < I / 8; ++b) {
      for (int64_t r = 0; r < 8; ++r) {
        const uint8_t* gate_src = w.data() + (e * 2 * I + 8 * b + r) * row;
        const uint8_t* up_src = w.data() + (e * 2 * I + I + 8 * b + r) * row;
        const uint8_t* gate_dst = fwd.data() + (e * 2 * I + 16 * b + r) * row;
        const uint8_t* up_dst = fwd.data() + (e * 2 * I + 16 * b + 8 + r) * row;
        ASSERT_EQ(std::memcmp(gate_src, gate_dst, static_cast<std::size_t>(row)), 0) << "gate row " << 8 * b + r;
        ASSERT_EQ(std::memcmp(up_src, up_dst, static_cast<std::size_t>(row)), 0) << "up row " << 8 * b + r;
      }
    }
  }

  ASSERT_EQ(megamoe_interleave_gate_up(ctx, &ft, &bt, 1, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_TRUE(mmt::bytes_equal(back.data(), w.data(), bytes)) << "inverse(interleave(w)) != w";
  EXPECT_TRUE(back.guard_intact());

  ASSERT_EQ(megamoe_interleave_gate_up(ctx, &wt, &it, 1, nullptr), MEGAMOE_SUCCESS) << last_error();
  mmt::ref_interleave_gate_up(w.data(), want.data(), E, I, H, elem, true);
  EXPECT_TRUE(mmt::bytes_equal(inv_direct.data(), want.data(), bytes)) << "inverse interleave";
  if (I > 16) {  // for I = 8 and 16 the permutation is its own inverse
    EXPECT_FALSE(mmt::bytes_equal(inv_direct.data(), fwd.data(), bytes)) << "inverse must differ from forward";
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, Interleave,
    ::testing::Combine(::testing::Values(Shape{0, 8, 128}, Shape{0, 136, 5}, Shape{3, 16, 128}, Shape{2, 256, 64},
                                         Shape{1, 24, 1}),
                       ::testing::Values(MEGAMOE_DTYPE_FP8_E4M3, MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32,
                                         MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64)));

}  // namespace
