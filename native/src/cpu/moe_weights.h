// Weight preparation of a MoE layer: the caller's weights copied into memory the layer owns, in
// the canonical [gate; up] row order, FP8 with 128x128 block scales.
#pragma once

#include "core/backend.h"
#include "cpu/aligned_buffer.h"
#include "cpu/thread_pool.h"

namespace megamoe::cpu {

struct PreparedWeights {
  AlignedBuffer w13;         // FP8 [E, 2I, H], rows 0..I-1 gate, I..2I-1 up
  AlignedBuffer w13_scales;  // FP32 [E, 2I/128, H/128]
  AlignedBuffer w2;          // FP8 [E, H, I]
  AlignedBuffer w2_scales;   // FP32 [E, H/128, I/128]
};

// FP8 weights are copied with their scales; BF16/FP32 weights are quantized per 128x128 block
// (no UE8M0). Interleaved w13 rows are put back in canonical order first; their scales are
// canonical already (the interleave leaves block scales unchanged). spec.progress, if set, hears
// (done, total) once before and after each expert's matrix; a nonzero answer throws
// Error(MEGAMOE_ERROR_CANCELLED).
PreparedWeights prepare_moe_weights(ThreadPool& pool, const MoeLayerSpec& spec, const MoeWeights& weights);

}  // namespace megamoe::cpu
