// Independent FP8 E4M3FN / BF16 / UE8M0 conversions used by the references and by test_formats to
// cross-check core/formats.h. They follow the definitions (value tables, nearest-value search in
// double) rather than bit manipulation, so that they do not share mistakes with the library.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "support/test_support.h"

namespace mmt {

uint32_t float_to_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

float bits_to_float(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

float fp8_decode(uint8_t code) {
  const int sign = code >> 7;
  const int exponent = (code >> 3) & 0xF;
  const int mantissa = code & 0x7;
  if (exponent == 0xF && mantissa == 0x7) return std::numeric_limits<float>::quiet_NaN();
  // Subnormal: 0.mmm * 2^-6 = m * 2^-9; normal: 1.mmm * 2^(e-7) = (8 + m) * 2^(e-10).
  const double magnitude = exponent == 0 ? std::ldexp(mantissa, -9) : std::ldexp(8 + mantissa, exponent - 10);
  return static_cast<float>(sign ? -magnitude : magnitude);
}

namespace {

// The 127 finite non-negative FP8 magnitudes, indexed by code (ascending).
const std::array<double, 127>& fp8_magnitudes() {
  static const std::array<double, 127> table = [] {
    std::array<double, 127> t{};
    for (int c = 0; c < 127; ++c) t[static_cast<std::size_t>(c)] = static_cast<double>(fp8_decode(static_cast<uint8_t>(c)));
    return t;
  }();
  return table;
}

double bf16_magnitude_as_double(uint32_t magnitude_bits) {
  // magnitude_bits is a 15-bit BF16 magnitude pattern; 0x7F80 is treated as the finite value 2^128
  // (the next value after the largest finite one), which is what round-to-nearest compares against.
  if (magnitude_bits == 0x7F80u) return std::ldexp(1.0, 128);
  return static_cast<double>(bits_to_float(magnitude_bits << 16));
}

}  // namespace

uint8_t fp8_encode(float x) {
  if (std::isnan(x)) return 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const double a = std::fabs(static_cast<double>(x));
  // Above 448 the nearest value is 448 up to the midpoint 464 (a tie that goes to the even code
  // 0x7E); beyond it the conversion saturates. Either way: 448.
  if (a >= 448.0) return static_cast<uint8_t>(sign | 0x7E);
  const auto& t = fp8_magnitudes();
  // Largest code whose magnitude is <= a.
  const auto it = std::upper_bound(t.begin(), t.end(), a);
  const int lo = static_cast<int>(it - t.begin()) - 1;
  const int hi = lo + 1;  // a < 448 = t[126], so lo <= 125
  const double below = a - t[static_cast<std::size_t>(lo)];
  const double above = t[static_cast<std::size_t>(hi)] - a;
  int code;
  if (below < above) {
    code = lo;
  } else if (above < below) {
    code = hi;
  } else {
    code = (lo % 2 == 0) ? lo : hi;
  }
  return static_cast<uint8_t>(sign | code);
}

int32_t fp8_units(uint8_t code) {
  const float v = fp8_decode(code);
  return static_cast<int32_t>(std::ldexp(static_cast<double>(v), 9));
}

float bf16_decode(uint16_t bits) { return bits_to_float(static_cast<uint32_t>(bits) << 16); }

uint16_t bf16_encode(float x) {
  if (std::isnan(x)) return 0x7FFF;
  const uint32_t bits = float_to_bits(x);
  const uint32_t sign = bits & 0x80000000u;
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude == 0x7F800000u) return static_cast<uint16_t>((sign | magnitude) >> 16);
  const uint32_t lo = magnitude >> 16;  // truncated magnitude
  const uint32_t hi = lo + 1;
  const double a = static_cast<double>(bits_to_float(magnitude));
  const double below = a - bf16_magnitude_as_double(lo);
  const double above = bf16_magnitude_as_double(hi) - a;
  uint32_t chosen;
  if (below < above) {
    chosen = lo;
  } else if (above < below) {
    chosen = hi;
  } else {
    chosen = (lo % 2 == 0) ? lo : hi;
  }
  return static_cast<uint16_t>((sign >> 16) | chosen);
}

float pow2_ceil(float x) {
  if (!(x > 0.0f) || !std::isfinite(x)) return x;
  int e = 0;
  const double m = std::frexp(static_cast<double>(x), &e);  // x = m * 2^e, m in [0.5, 1)
  if (m == 0.5) return x;
  return static_cast<float>(std::ldexp(1.0, e));
}

}  // namespace mmt
