// White-box tests of core/formats.h (docs/NUMERICS.md section 1): FP8 E4M3FN, BF16, UE8M0.
// Expected values come from the definitions (ldexp, nearest-value search in double), never from the
// code under test.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "core/formats.h"
#include "support/test_support.h"

namespace {

using megamoe::bf16_to_float;
using megamoe::float_to_bf16;
using megamoe::float_to_fp8_e4m3;
using megamoe::fp8_e4m3_to_float;
using megamoe::round_up_to_power_of_two;
using mmt::bits_to_float;
using mmt::float_to_bits;

// Independent of the support library too: the E4M3FN definition written out.
double e4m3_definition(unsigned code) {
  const unsigned s = code >> 7, e = (code >> 3) & 15u, m = code & 7u;
  const double magnitude = e == 0 ? std::ldexp(static_cast<double>(m) / 8.0, -6)
                                  : std::ldexp(1.0 + static_cast<double>(m) / 8.0, static_cast<int>(e) - 7);
  return s ? -magnitude : magnitude;
}

bool is_nan_code(unsigned code) { return (code & 0x7Fu) == 0x7Fu; }

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%X", v);
  return buf;
}

// ------------------------------------------------------------------------------------------------
// FP8 decode
// ------------------------------------------------------------------------------------------------
TEST(Fp8E4M3, DecodesAll256CodesToTheDefinition) {
  int nan_codes = 0;
  for (unsigned code = 0; code < 256; ++code) {
    SCOPED_TRACE("code " + hex(code));
    const float got = fp8_e4m3_to_float(static_cast<uint8_t>(code));
    if (is_nan_code(code)) {
      EXPECT_TRUE(std::isnan(got));
      ++nan_codes;
      continue;
    }
    const double want = e4m3_definition(code);
    EXPECT_EQ(static_cast<double>(got), want);
    EXPECT_EQ(std::signbit(got), (code & 0x80u) != 0) << "sign (including signed zero)";
    EXPECT_EQ(float_to_bits(got), float_to_bits(mmt::fp8_decode(static_cast<uint8_t>(code))));
  }
  EXPECT_EQ(nan_codes, 2);
}

TEST(Fp8E4M3, KeyValues) {
  EXPECT_EQ(fp8_e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_float(0xFE), -448.0f);
  EXPECT_EQ(fp8_e4m3_to_float(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_e4m3_to_float(0x07), 7.0f * std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_e4m3_to_float(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(fp8_e4m3_to_float(0x38), 1.0f);
  EXPECT_EQ(fp8_e4m3_to_float(0x78), 256.0f);
  EXPECT_EQ(float_to_bits(fp8_e4m3_to_float(0x80)), 0x80000000u);
  EXPECT_EQ(megamoe::kFp8E4M3Max, 448.0f);
  EXPECT_EQ(megamoe::kFp8E4M3NaN, 0x7F);
}

TEST(Fp8E4M3, DecodeIsMonotonicOverPositiveCodes) {
  for (unsigned code = 1; code < 127; ++code)
    EXPECT_LT(fp8_e4m3_to_float(static_cast<uint8_t>(code - 1)), fp8_e4m3_to_float(static_cast<uint8_t>(code)))
        << "code " << hex(code);
}

// ------------------------------------------------------------------------------------------------
// FP8 encode
// ------------------------------------------------------------------------------------------------
TEST(Fp8E4M3, RoundTripsEveryNonNanCode) {
  for (unsigned code = 0; code < 256; ++code) {
    if (is_nan_code(code)) continue;
    const float v = fp8_e4m3_to_float(static_cast<uint8_t>(code));
    EXPECT_EQ(float_to_fp8_e4m3(v), code) << "code " << hex(code) << " value " << v;
  }
}

TEST(Fp8E4M3, MidpointsRoundToEvenAndNeighboursRoundAway) {
  for (unsigned lo = 0; lo < 126; ++lo) {
    const unsigned hi = lo + 1;
    const double vlo = e4m3_definition(lo), vhi = e4m3_definition(hi);
    const double mid = (vlo + vhi) / 2.0;
    const auto midf = static_cast<float>(mid);
    ASSERT_EQ(static_cast<double>(midf), mid) << "midpoint not representable in float";
    const unsigned even = (lo % 2 == 0) ? lo : hi;
    const float below = std::nextafter(midf, 0.0f);
    const float above = std::nextafter(midf, 1000.0f);
    for (unsigned sign : {0u, 0x80u}) {
      const float sgn = sign ? -1.0f : 1.0f;
      SCOPED_TRACE("between " + hex(lo | sign) + " and " + hex(hi | sign));
      EXPECT_EQ(float_to_fp8_e4m3(sgn * midf), even | sign) << "midpoint " << sgn * midf;
      EXPECT_EQ(float_to_fp8_e4m3(sgn * below), lo | sign) << "midpoint - 1 ulp " << sgn * below;
      EXPECT_EQ(float_to_fp8_e4m3(sgn * above), hi | sign) << "midpoint + 1 ulp " << sgn * above;
    }
  }
}

TEST(Fp8E4M3, Saturation) {
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    float x;
    uint8_t want;
  };
  const std::vector<Case> cases = {
      {448.0f, 0x7E},
      {449.0f, 0x7E},
      {463.99997f, 0x7E},
      {464.0f, 0x7E},  // the tie with the (non-existent) 480 goes to the even code
      {std::nextafter(464.0f, 1000.0f), 0x7E},
      {464.0001f, 0x7E},
      {480.0f, 0x7E},
      {1e6f, 0x7E},
      {1e30f, 0x7E},
      {std::numeric_limits<float>::max(), 0x7E},
      {inf, 0x7E},
      {-448.0f, 0xFE},
      {-464.0f, 0xFE},
      {-464.0001f, 0xFE},
      {-1e30f, 0xFE},
      {-inf, 0xFE},
      {std::nextafter(448.0f, 0.0f), 0x7E},
      {416.0f, 0x7D},
      {432.0f, 0x7E},  // tie between 416 (0x7D, odd) and 448 (0x7E, even)
      {std::nextafter(432.0f, 0.0f), 0x7D},
      {440.0f, 0x7E},
  };
  for (const auto& c : cases) EXPECT_EQ(float_to_fp8_e4m3(c.x), c.want) << "x = " << c.x;
}

TEST(Fp8E4M3, NanGives0x7FWhateverItsSign) {
  const std::vector<uint32_t> nans = {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu, 0xFFFFFFFFu,
                                      0x7FA00000u};
  for (uint32_t bits : nans) EXPECT_EQ(float_to_fp8_e4m3(bits_to_float(bits)), 0x7F) << "bits " << hex(bits);
}

TEST(Fp8E4M3, TinyValuesAndSignedZeros) {
  const float two_m10 = std::ldexp(1.0f, -10);
  EXPECT_EQ(float_to_fp8_e4m3(0.0f), 0x00);
  EXPECT_EQ(float_to_fp8_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_fp8_e4m3(two_m10), 0x00);
  EXPECT_EQ(float_to_fp8_e4m3(-two_m10), 0x80);
  EXPECT_EQ(float_to_fp8_e4m3(std::nextafter(two_m10, 1.0f)), 0x01);
  EXPECT_EQ(float_to_fp8_e4m3(-std::nextafter(two_m10, 1.0f)), 0x81);
  EXPECT_EQ(float_to_fp8_e4m3(std::nextafter(two_m10, 0.0f)), 0x00);
  EXPECT_EQ(float_to_fp8_e4m3(1e-30f), 0x00);
  EXPECT_EQ(float_to_fp8_e4m3(-1e-30f), 0x80);
  EXPECT_EQ(float_to_fp8_e4m3(std::numeric_limits<float>::denorm_min()), 0x00);
  EXPECT_EQ(float_to_fp8_e4m3(-std::numeric_limits<float>::denorm_min()), 0x80);
  EXPECT_EQ(float_to_fp8_e4m3(std::ldexp(1.0f, -9)), 0x01);
  EXPECT_EQ(float_to_fp8_e4m3(3.0f * std::ldexp(1.0f, -10)), 0x02);  // tie 1 <-> 2 goes to even 2
  EXPECT_EQ(float_to_fp8_e4m3(5.0f * std::ldexp(1.0f, -10)), 0x02);  // tie 2 <-> 3 goes to even 2
  // Subnormal -> normal carry: 7.5 * 2^-9 ties between 0x07 and 0x08 (even).
  EXPECT_EQ(float_to_fp8_e4m3(7.5f * std::ldexp(1.0f, -9)), 0x08);
  // Carry into the next binade: 1.9375 is the midpoint of 1.875 (0x3F) and 2 (0x40).
  EXPECT_EQ(float_to_fp8_e4m3(1.9375f), 0x40);
}

// Compare with the independent nearest-value encoder over a large set of float patterns: all
// patterns whose low 16 bits are at or next to a rounding boundary, plus random ones.
TEST(Fp8E4M3, MatchesIndependentEncoderOnManyFloats) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  int64_t mismatches = 0;
  auto check = [&](uint32_t bits) {
    const float x = bits_to_float(bits);
    const uint8_t got = float_to_fp8_e4m3(x);
    const uint8_t want = mmt::fp8_encode(x);
    if (got != want) {
      if (mismatches < 10) ADD_FAILURE() << "x = " << x << " (" << hex(bits) << "): got " << hex(got) << " want " << hex(want);
      ++mismatches;
    }
  };
  for (uint32_t high = 0; high < 0x10000u; ++high) {
    for (uint32_t low : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu}) check((high << 16) | low);
  }
  for (int i = 0; i < 1000000; ++i) check(rng.bits32());
  // Dense sweep of the whole FP8 range [2^-11, 512) at a coarse stride of the float mantissa.
  for (uint32_t bits = float_to_bits(std::ldexp(1.0f, -11)); bits < float_to_bits(512.0f); bits += 97) check(bits);
  EXPECT_EQ(mismatches, 0);
}

// ------------------------------------------------------------------------------------------------
// BF16
// ------------------------------------------------------------------------------------------------
TEST(Bf16, DecodeIsTheHighHalfOfAFloat) {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const float got = bf16_to_float(static_cast<uint16_t>(b));
    EXPECT_EQ(float_to_bits(got), b << 16) << hex(b);
    if (float_to_bits(got) != (b << 16)) break;
  }
}

TEST(Bf16, RoundTripsEveryNonNanPattern) {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    if ((b & 0x7F80u) == 0x7F80u && (b & 0x7Fu) != 0) continue;  // NaN
    const uint16_t got = float_to_bf16(bits_to_float(b << 16));
    ASSERT_EQ(got, b) << hex(b);
  }
}

TEST(Bf16, RoundToNearestEvenBoundaries) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  for (int i = 0; i < 20000; ++i) {
    // A random finite, non-maximal BF16 magnitude pattern.
    const uint32_t hi = rng.bits32() % 0x7F7Fu;  // 0 .. 0x7F7E, so hi + 1 is finite
    const uint32_t sign = (rng.bits32() & 1u) ? 0x8000u : 0u;
    const uint32_t base = ((sign | hi) << 16);
    const uint16_t even_up = static_cast<uint16_t>((hi & 1u) ? (sign | (hi + 1)) : (sign | hi));
    SCOPED_TRACE("pattern " + hex(base));
    EXPECT_EQ(float_to_bf16(bits_to_float(base | 0x8000u)), even_up) << "tie";
    EXPECT_EQ(float_to_bf16(bits_to_float(base | 0x7FFFu)), sign | hi) << "just below the tie";
    EXPECT_EQ(float_to_bf16(bits_to_float(base | 0x8001u)), sign | (hi + 1)) << "just above the tie";
    EXPECT_EQ(float_to_bf16(bits_to_float(base | 0x0001u)), sign | hi);
    EXPECT_EQ(float_to_bf16(bits_to_float(base | 0xFFFFu)), sign | (hi + 1));
  }
  // Explicit cases: 1 + 2^-8 is the tie between 1 (even) and 1 + 2^-7.
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  EXPECT_EQ(float_to_bf16(1.0f + 3.0f * std::ldexp(1.0f, -8)), 0x3F82);
  // Overflow: the midpoint between the largest finite BF16 and 2^128 rounds to infinity.
  EXPECT_EQ(float_to_bf16(bits_to_float(0x7F7F8000u)), 0x7F80);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x7F7F7FFFu)), 0x7F7F);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::max()), 0xFF80);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(float_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  // Float subnormals round like everything else.
  EXPECT_EQ(float_to_bf16(bits_to_float(0x00008000u)), 0x0000);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x00018000u)), 0x0002);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x00008001u)), 0x0001);
}

TEST(Bf16, NanGives0x7FFF) {
  const std::vector<uint32_t> nans = {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu, 0xFFFFFFFFu,
                                      0x7F80FFFFu, 0x7F808000u};
  for (uint32_t bits : nans) EXPECT_EQ(float_to_bf16(bits_to_float(bits)), 0x7FFF) << "bits " << hex(bits);
}

TEST(Bf16, MatchesIndependentEncoderOnManyFloats) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  int64_t mismatches = 0;
  auto check = [&](uint32_t bits) {
    const uint16_t got = float_to_bf16(bits_to_float(bits));
    const uint16_t want = mmt::bf16_encode(bits_to_float(bits));
    if (got != want) {
      if (mismatches < 10) ADD_FAILURE() << hex(bits) << ": got " << hex(got) << " want " << hex(want);
      ++mismatches;
    }
  };
  for (uint32_t high = 0; high < 0x10000u; ++high)
    for (uint32_t low : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu}) check((high << 16) | low);
  for (int i = 0; i < 1000000; ++i) check(rng.bits32());
  EXPECT_EQ(mismatches, 0);
}

// ------------------------------------------------------------------------------------------------
// UE8M0
// ------------------------------------------------------------------------------------------------
TEST(Ue8m0, PowersOfTwoAreUnchanged) {
  for (int e = -126; e <= 127; ++e) {
    const float p = std::ldexp(1.0f, e);
    EXPECT_EQ(round_up_to_power_of_two(p), p) << "2^" << e;
  }
}

TEST(Ue8m0, RoundsUpToTheNextPowerOfTwo) {
  for (int e = -126; e < 127; ++e) {
    const float p = std::ldexp(1.0f, e);
    const float next = std::ldexp(1.0f, e + 1);
    EXPECT_EQ(round_up_to_power_of_two(std::nextafter(p, 1e38f)), next) << "just above 2^" << e;
    EXPECT_EQ(round_up_to_power_of_two(std::nextafter(next, 0.0f)), next) << "just below 2^" << e + 1;
    EXPECT_EQ(round_up_to_power_of_two(1.5f * p), next);
  }
  // Typical activation scales: amax / 448.
  EXPECT_EQ(round_up_to_power_of_two(1.0f / 448.0f), std::ldexp(1.0f, -8));
  EXPECT_EQ(round_up_to_power_of_two(1e-4f / 448.0f), std::ldexp(1.0f, -22));
  EXPECT_EQ(round_up_to_power_of_two(448.0f / 448.0f), 1.0f);
}

TEST(Ue8m0, MatchesFrexpDefinitionOnRandomNormals) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  for (int i = 0; i < 200000; ++i) {
    // Positive normal floats below 2^127 (so that the result is finite).
    const uint32_t bits = 0x00800000u + rng.bits32() % (0x7F000000u - 0x00800000u);
    const float x = bits_to_float(bits);
    const float want = mmt::pow2_ceil(x);
    const float got = round_up_to_power_of_two(x);
    ASSERT_EQ(float_to_bits(got), float_to_bits(want)) << "x = " << x << " (" << hex(bits) << ")";
    ASSERT_GE(got, x);
    ASSERT_LT(got / 2.0f, x);
  }
}

}  // namespace
