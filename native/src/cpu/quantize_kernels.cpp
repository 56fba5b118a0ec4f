#include "cpu/quantize_kernels.h"

#include <algorithm>

#include "cpu/fp8_convert.h"

namespace megamoe::cpu {

namespace {

// The magnitude bits order like the magnitudes for every non-NaN float; NaN counts as 0. Written
// with a mask rather than a select so the max reduction vectorizes.
inline uint32_t magnitude_or_zero(uint32_t bits) {
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  return magnitude & (0u - static_cast<uint32_t>(magnitude <= 0x7F800000u));
}

}  // namespace

#if defined(__x86_64__)
#define MEGAMOE_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MEGAMOE_CPU_CLONES
#endif

MEGAMOE_CPU_CLONES float span_amax(const float* x, int64_t n) {
  uint32_t amax = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t m = magnitude_or_zero(float_bits(x[i]));
    amax = std::max(amax, m);
  }
  return bits_float(amax);
}

MEGAMOE_CPU_CLONES float span_amax(const uint16_t* bf16, int64_t n) {
  uint32_t amax = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t m = magnitude_or_zero(static_cast<uint32_t>(bf16[i]) << 16);
    amax = std::max(amax, m);
  }
  return bits_float(amax);
}

MEGAMOE_CPU_CLONES void quantize_span(const float* __restrict x, int64_t n, float inv, uint8_t* __restrict q) {
  for (int64_t i = 0; i < n; ++i) q[i] = fp8_from_float(x[i] * inv);
}

MEGAMOE_CPU_CLONES void quantize_span(const uint16_t* __restrict bf16, int64_t n, float inv, uint8_t* __restrict q) {
  for (int64_t i = 0; i < n; ++i) q[i] = fp8_from_float(bf16_to_float(bf16[i]) * inv);
}

}  // namespace megamoe::cpu
