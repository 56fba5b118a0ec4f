// The elementwise loops of quantization, compiled for several instruction sets (target_clones)
// because quantizing a layer's BF16 weights touches billions of values. Results are bitwise the
// same for every instruction set: integer max and the branch-free conversion of fp8_convert.h.
#pragma once

#include <cstdint>

namespace megamoe::cpu {

// Largest |x| over n values; NaN values are skipped, as fmaxf skips them. 0 when n == 0.
float span_amax(const float* x, int64_t n);
float span_amax(const uint16_t* bf16, int64_t n);

// q[i] = fp8(x[i] * inv).
void quantize_span(const float* x, int64_t n, float inv, uint8_t* q);
void quantize_span(const uint16_t* bf16, int64_t n, float inv, uint8_t* q);

}  // namespace megamoe::cpu
