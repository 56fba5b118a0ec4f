// Parameters of one SM90 GEMM launch as the kernel reads them (a __grid_constant__), composed of one
// struct per concern: the operands every variant reads, the row layout, and one struct per fused
// epilogue. The host fills the same structs in GemmArgs (gemm.h); make_kernel_params (launch.cuh)
// adds what depends on the chosen variant.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace megamoe::cuda::sm90 {

struct GemmOperands {
  const uint8_t* a = nullptr;    // FP8 A (read directly by the gathering epilogues' producers)
  const float* sfa = nullptr;    // [rows or tokens, K/128]
  const float* sfb = nullptr;    // [groups, N/128, K/128]
  __nv_bfloat16* d = nullptr;    // [rows, N] (Bf16) or [slots, N] (RoutedBf16)
  bool scales_by_tma = false;    // sfa / sfb staged by TMA (smem_budget.h gemm_scales_by_tma), set at launch
};

struct GemmLayout {
  const void* groups_data = nullptr;  // m_indices / masked_m / offsets / routing offsets [E + 2]
  bool groups_int64 = false;          // offsets given as INT64
  uint32_t rows = 0;                  // rows of the 2D views of A / D (masked: groups * max_m)
  uint32_t max_m = 0;                 // masked: rows per group
  uint32_t n = 0;
  uint32_t k = 0;
  uint32_t groups = 1;
  uint32_t band = 0;                  // L2 swizzle band (schedule.h swizzle_band), set at launch
  uint32_t k_splits = 1;              // SplitK layout: CTAs (one cluster) per tile, each a slice of K (schedule.h
                                      // split_k_range); set at launch from the variant choice
};

// Routed layouts (GemmKind::Routed): rows are the slots of a batch grouped by expert on the device.
struct RoutedParams {
  const int32_t* row_slot = nullptr;     // grouped row -> slot t * top_k + j
  uint32_t top_k = 1;
  uint32_t narrow_m = 0;                 // expert specialization: tile height for small experts (0 = off), set at launch
  bool dropped_segment = false;          // walk the dropped slots too (RoutedBf16 writes their zero rows)
  const float* slot_weights = nullptr;   // [T * top_k] top-k weights, or null
};

// GemmEpilogue::SwigluFp8
struct SwigluParams {
  uint8_t* act = nullptr;        // [slots, I] FP8, grouped row order
  float* act_scales = nullptr;   // [slots, I/128]
  uint32_t act_cols = 0;         // I
  float weight_scale = 1.0f;     // routed scaling factor
  float alpha = 1.0f;
  float beta = 0.0f;
  float clamp = 0.0f;            // > 0: gate <= c, -c <= up <= c
};

// GemmEpilogue::CombineF32
struct CombineParams {
  __nv_bfloat16* z = nullptr;            // [slots, N] per slot, the accumulators rounded to BF16
  int32_t* counters = nullptr;           // [T, N / BLOCK_N] tiles done per (token, n-block), zeroed per forward
  const uint32_t* token_masks = nullptr; // [T] bit j set: slot j of the token is routed (moe_kernels.cu)
  __nv_bfloat16* y = nullptr;            // [T, N]
  float* y_f32 = nullptr;                // [T, N], instead of y: the sum before its rounding (expert parallelism)
};

struct KernelParams {
  GemmOperands op;
  GemmLayout layout;
  RoutedParams routed;
  SwigluParams swiglu;
  CombineParams combine;
};

}  // namespace megamoe::cuda::sm90
