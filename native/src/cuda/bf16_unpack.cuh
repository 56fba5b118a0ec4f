// BF16 -> float is exact (a BF16 is a float's high half); the kernels that read BF16 in 16-byte loads
// (the activation quantizer, the fused combine) unpack them here.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace megamoe::cuda {

// Eight BF16 values (one 16-byte load) as floats, in memory order.
__device__ __forceinline__ void unpack_bf16x8(uint4 raw, float* v) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[2 * i] = __uint_as_float(w[i] << 16);  // the low half is the even element
    v[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
  }
}

}  // namespace megamoe::cuda
