// Bit-exact FP8 E4M3FN and BF16 conversions (docs/NUMERICS.md section 1).
// Float -> FP8 follows __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3) as the SM90 instruction
// cvt.rn.satfinite.e4m3x2.f32 computes it: round to nearest even, finite values beyond the range
// and infinities saturate to +-448, NaN becomes 0x7F. Float -> BF16 follows __float2bfloat16
// (round to nearest even, NaN becomes 0x7FFF).
#pragma once

#include <cstdint>
#include <cstring>

#include "core/host_device.h"

namespace megamoe {

MEGAMOE_HD uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

MEGAMOE_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

constexpr float kFp8E4M3Max = 448.0f;
constexpr uint8_t kFp8E4M3NaN = 0x7F;

// FP8 E4M3FN code -> float (exact).
MEGAMOE_HD float fp8_e4m3_to_float(uint8_t code) {
  const uint32_t sign = static_cast<uint32_t>(code & 0x80u) << 24;
  const uint32_t exponent = (code >> 3) & 0xFu;
  const uint32_t mantissa = code & 0x7u;
  if (exponent == 0xFu && mantissa == 0x7u) return bits_float(0x7FC00000u | sign);
  if (exponent == 0) {
    // Subnormal: mantissa * 2^-9, exact in float.
    const float magnitude = static_cast<float>(mantissa) * 0.001953125f;
    return bits_float(float_bits(magnitude) | sign);
  }
  return bits_float(sign | ((exponent + 120u) << 23) | (mantissa << 20));
}

// float -> FP8 E4M3FN, round to nearest even, saturating to finite values.
MEGAMOE_HD uint8_t float_to_fp8_e4m3(float x) {
  const uint32_t bits = float_bits(x);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) return kFp8E4M3NaN;
  // Beyond 448 + half an ulp (464) everything, infinity included, saturates to 448.
  if (abs_bits > 0x43E80000u) return static_cast<uint8_t>(sign | 0x7Eu);
  // At or below half the smallest subnormal (2^-10) everything rounds to zero.
  if (abs_bits <= 0x3A800000u) return sign;
  const int32_t exponent = static_cast<int32_t>(abs_bits >> 23) - 127;  // unbiased
  const uint32_t significand = (abs_bits & 0x7FFFFFu) | 0x800000u;     // 24 bits, implicit one
  // Bits of the float significand dropped by the 3-bit FP8 mantissa; more when subnormal.
  const int32_t shift = exponent >= -6 ? 20 : 20 + (-6 - exponent);
  uint32_t kept = significand >> shift;
  const uint32_t rest = significand & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (kept & 1u))) ++kept;
  uint32_t code;
  if (exponent >= -6) {
    // kept holds 1.mmm (4 bits); a carry out of the mantissa bumps the exponent.
    code = (static_cast<uint32_t>(exponent + 7) << 3) + (kept - 8u);
  } else {
    code = kept;  // subnormal (or the smallest normal after a carry: 8 == 0b0001000)
  }
  return static_cast<uint8_t>(sign | code);
}

// BF16 bits -> float (exact).
MEGAMOE_HD float bf16_to_float(uint16_t bits) { return bits_float(static_cast<uint32_t>(bits) << 16); }

// float -> BF16 bits, round to nearest even.
MEGAMOE_HD uint16_t float_to_bf16(float x) {
  const uint32_t bits = float_bits(x);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FFFu;
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// NaN or +-infinity (all exponent bits set).
MEGAMOE_HD bool is_nonfinite(float x) { return (float_bits(x) & 0x7F800000u) == 0x7F800000u; }

// Smallest power of two >= x, for positive normal x ("UE8M0" scales).
MEGAMOE_HD float round_up_to_power_of_two(float x) {
  const uint32_t bits = float_bits(x);
  if ((bits & 0x7FFFFFu) == 0) return x;
  return bits_float((bits & 0xFF800000u) + 0x800000u);
}

}  // namespace megamoe
