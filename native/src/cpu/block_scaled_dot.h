// The one accumulation routine behind every GEMM path and the MoE layer: the float32 accumulator
// of docs/NUMERICS.md section 3 for a few FP8 rows of A against a 16-row panel of B.
#pragma once

#include <cstdint>

namespace megamoe::cpu {

constexpr int64_t kBlock = 128;      // K elements per partial, and the side of a scale block
constexpr int32_t kPanelCols = 16;   // B rows (output columns) per accumulate_panel call
constexpr int32_t kMaxPanelRows = 64;  // A rows per accumulate_panel call

// One row of A: k FP8 values and their k / 128 float32 scales. Rows are passed by pointer so the
// grouped paths gather tokens without copying them.
struct Fp8Row {
  const uint8_t* data;
  const float* scales;
};

// acc[r * kPanelCols + c] = the float32 accumulator (not rounded to BF16) of rows[r] against B row c
// of the panel, for r < count <= kMaxPanelRows. `b` points at the panel's first row of k FP8 values
// (rows k apart); `b_scales` at the k / 128 scales of the 128-row block holding the panel (a panel
// never straddles two blocks). k is a multiple of 128. Bitwise independent of the instruction set.
void accumulate_panel(const Fp8Row* rows, int32_t count, const uint8_t* b, const float* b_scales, int64_t k,
                      float* acc);

// The instruction set accumulate_panel uses, shown in the device name: "avx512", "avx2" or
// "generic". The best one the CPU has, unless the environment variable MEGAMOE_CPU_ISA (read when
// the library loads) names a lower one, e.g. to check that results do not depend on it.
const char* dot_isa_name();

}  // namespace megamoe::cpu
