#include "support/ep_world.h"

#include <algorithm>
#include <cmath>

namespace mmt {

EpWorld::EpWorld(int32_t world_size)
    : contexts_(static_cast<std::size_t>(world_size)), comms_(static_cast<std::size_t>(world_size)) {
  for (auto& c : contexts_) {
    EXPECT_EQ(megamoe_context_create(MEGAMOE_BACKEND_CPU, 0, &c), MEGAMOE_SUCCESS) << last_error();
    EXPECT_EQ(megamoe_context_set_num_threads(c, 1), MEGAMOE_SUCCESS) << last_error();
  }
  EXPECT_EQ(megamoe_ep_comm_create_loopback(contexts_.data(), world_size, comms_.data()), MEGAMOE_SUCCESS)
      << last_error();
}

EpWorld::~EpWorld() {
  for (auto c : comms_) EXPECT_EQ(megamoe_ep_comm_destroy(c), MEGAMOE_SUCCESS) << last_error();
  for (auto c : contexts_) EXPECT_EQ(megamoe_context_destroy(c), MEGAMOE_SUCCESS) << last_error();
}

void EpWorld::drop(int32_t rank) {
  EXPECT_EQ(megamoe_ep_comm_destroy(comms_[static_cast<std::size_t>(rank)]), MEGAMOE_SUCCESS) << last_error();
  comms_[static_cast<std::size_t>(rank)] = nullptr;
}

std::vector<int32_t> split_experts(int64_t experts, int32_t world_size) {
  std::vector<int32_t> begin(static_cast<std::size_t>(world_size) + 1, 0);
  for (int32_t r = 0; r < world_size; ++r) {
    const int64_t count = experts / world_size + (r < experts % world_size ? 1 : 0);
    begin[static_cast<std::size_t>(r) + 1] = begin[static_cast<std::size_t>(r)] + static_cast<int32_t>(count);
  }
  return begin;
}

megamoe_ep_config_t ep_config(const MoeProblem& p, int64_t max_tokens_per_rank, int32_t expert_begin,
                              int32_t num_local_experts, uint32_t flags) {
  auto c = layer_config<megamoe_ep_config_t>(p, flags);
  c.max_tokens_per_rank = max_tokens_per_rank;
  c.expert_begin = expert_begin;
  c.num_local_experts = num_local_experts;
  return c;
}

int64_t bf16_ulps(uint16_t a, uint16_t b) {
  // Map the sign-magnitude codes onto a monotonic integer line (both zeros at 0).
  const auto line = [](uint16_t v) -> int64_t { return (v & 0x8000) ? -int64_t{v & 0x7FFF} : int64_t{v}; };
  const int64_t d = line(a) - line(b);
  return d < 0 ? -d : d;
}

BatchTensors::BatchTensors(const MoeBatch& b, int64_t hidden, bool idx64_routing)
    : idx32(b.idx.begin(), b.idx.end()), idx64(b.idx.begin(), b.idx.end()) {
  const int64_t T = b.T, k = b.k;
  x = make_tensor(T ? b.x.data() : nullptr, MEGAMOE_DTYPE_BF16, {T, hidden});
  idx = idx64_routing ? make_tensor(T ? idx64.data() : nullptr, MEGAMOE_DTYPE_INT64, {T, k})
                      : make_tensor(T ? idx32.data() : nullptr, MEGAMOE_DTYPE_INT32, {T, k});
  w = make_tensor(T ? b.w.data() : nullptr, MEGAMOE_DTYPE_FP32, {T, k});
}

::testing::AssertionResult ep_close_to_single(const uint16_t* got, const uint16_t* want, int64_t rows, int64_t hidden,
                                              bool exact) {
  if (exact) return bf16_bits_equal(got, want, rows * hidden);
  for (int64_t t = 0; t < rows; ++t) {
    double row_max = 0.0;
    for (int64_t c = 0; c < hidden; ++c) row_max = std::max(row_max, std::fabs(static_cast<double>(bf16_decode(want[t * hidden + c]))));
    for (int64_t c = 0; c < hidden; ++c) {
      const int64_t i = t * hidden + c;
      if (bf16_ulps(got[i], want[i]) <= 1) continue;
      const double diff = std::fabs(static_cast<double>(bf16_decode(got[i])) - static_cast<double>(bf16_decode(want[i])));
      if (diff <= std::ldexp(row_max, -16)) continue;
      return ::testing::AssertionFailure() << "token " << t << " column " << c << ": " << bf16_decode(got[i]) << " vs "
                                           << bf16_decode(want[i]) << " (row max " << row_max << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace mmt
