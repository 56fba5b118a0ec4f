// Parameters of one SM90 GEMM launch, as the kernel reads them (__grid_constant__), and the
// epilogues a launch can end in.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace megamoe::cuda {

enum class GemmEpilogue : int32_t {
  // BF16 tile through shared memory and a TMA store (dense, contiguous, masked, offsets).
  Bf16 = 0,
  // Routed GEMM: A rows gathered from the tokens, each output row written to its slot t * top_k + j,
  // scaled by the slot's top-k weight (docs/NUMERICS.md section 3, routed).
  RoutedBf16 = 1,
  // MoE up-projection: A rows gathered; on gate/up-interleaved columns the clamped activation times
  // the top-k weight, re-quantized to FP8 with 1x128 scales, rows in grouped order (section 4,
  // steps 2-4). Needs BLOCK_N = 256: one tile is one 128-column quantization group.
  SwigluFp8 = 2,
  // MoE down-projection: float32 rows per slot, then the last tile of each (token, n-block) sums the
  // token's slots in slot order into BF16 y (section 4, steps 5-6).
  CombineF32 = 3,
};

constexpr bool epilogue_gathers_a(GemmEpilogue e) {
  return e == GemmEpilogue::RoutedBf16 || e == GemmEpilogue::SwigluFp8;
}

struct KernelParams {
  const uint8_t* a;     // FP8 A (read directly by the gathering epilogues' producers)
  const float* sfa;     // [rows or tokens, K/128]
  const float* sfb;     // [groups, N/128, K/128]
  const void* layout;   // m_indices / masked_m / offsets / routing offsets [E + 2]
  __nv_bfloat16* d;     // [rows, N] (Bf16) or [slots, N] (RoutedBf16)
  uint32_t rows;
  uint32_t max_m;
  uint32_t n;
  uint32_t k;
  uint32_t groups;
  uint32_t band;
  bool layout_int64;

  // Routed layouts (GemmKind::Routed).
  const int32_t* row_slot;     // grouped row -> slot t * top_k + j
  uint32_t top_k;
  uint32_t narrow_m;           // expert specialization: tile height for small experts (0 = off)
  bool dropped_segment;        // walk the dropped slots too (RoutedBf16 writes their zero rows)
  const float* slot_weights;   // [T * top_k] top-k weights, or null

  // SwigluFp8
  uint8_t* act;                // [slots, I] FP8, grouped row order
  float* act_scales;           // [slots, I/128]
  uint32_t act_cols;           // I
  float weight_scale;          // routed scaling factor
  float alpha;
  float beta;
  float clamp;                 // > 0: gate <= c, -c <= up <= c

  // CombineF32
  float* z;                    // [slots, N] float32 per slot
  int32_t* counters;           // [T, N / BLOCK_N] tiles done per (token, n-block), zeroed per forward
  const uint32_t* token_masks; // [T] bit j set: slot j of the token is routed (moe_kernels.cu)
  __nv_bfloat16* y;            // [T, N]
};

}  // namespace megamoe::cuda
