// Branch-free float -> FP8 E4M3FN, bit-identical to float_to_fp8_e4m3 (core/formats.h) for every
// float, so loops over it vectorize. Random data makes the reference's rounding branches
// unpredictable; quantizing gigabytes of weights wants straight-line code.
#pragma once

#include <cstdint>

#include "core/formats.h"

namespace megamoe::cpu {

inline uint8_t fp8_from_float(float x) {
  const uint32_t bits = float_bits(x);
  const uint32_t sign = (bits >> 24) & 0x80u;
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  // Normal results: round the 23-bit mantissa to 3 bits, ties to even (a carry bumps the
  // exponent), then rebias the exponent from 127 to 7.
  const uint32_t normal = ((magnitude + 0x7FFFFu + ((magnitude >> 20) & 1u)) >> 20) - (120u << 3);
  // Below 2^-6 the FP8 step is 2^-9, the ulp of 2^14: the float addition rounds |x| to that step
  // (ties to even) and the difference of the bits counts the steps.
  const uint32_t subnormal = float_bits(bits_float(magnitude) + 16384.0f) - 0x46800000u;
  // Selects as masks, compared signed (magnitude < 2^31; AVX2 has no unsigned vector compare), so
  // that no branch guards the float addition above and the loop if-converts.
  const auto m = static_cast<int32_t>(magnitude);
  const uint32_t small = 0u - static_cast<uint32_t>(m < 0x3C800000);
  const uint32_t huge = 0u - static_cast<uint32_t>(m > 0x43E80000);  // beyond 464, infinity included
  const uint32_t nan = 0u - static_cast<uint32_t>(m > 0x7F800000);
  uint32_t code = (subnormal & small) | (normal & ~small);
  code = ((0x7Eu & huge) | (code & ~huge)) | sign;
  return static_cast<uint8_t>((kFp8E4M3NaN & nan) | (code & ~nan));
}

}  // namespace megamoe::cpu
