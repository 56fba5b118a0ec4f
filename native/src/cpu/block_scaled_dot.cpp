// Exactness: every finite FP8 E4M3 value is an integer multiple of 2^-9 below 2^9 in magnitude
// with at most 4 significant bits, so each product A*B is a multiple of 2^-18 with at most 8
// significant bits, and any sum of up to 128 of them is a multiple of 2^-18 below 2^25: at most 43
// significant bits. float64 (53 bits) therefore holds every product and every partial sum exactly,
// whatever the order and whether or not the hardware fuses the multiply-add, which makes it the
// same exact integer sum the contract describes, computed with the wide double-precision FMA units.
// The one rounding is the final float64 -> float32 conversion (round to nearest even), equal to
// rounding the exact integer sum once and scaling by 2^-18. A NaN input (0x7F / 0xFF) propagates.
#include "cpu/block_scaled_dot.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/formats.h"

namespace megamoe::cpu {

namespace {

struct Fp8Table {
  double value[256];
  Fp8Table() {
    for (int code = 0; code < 256; ++code) value[code] = fp8_e4m3_to_float(static_cast<uint8_t>(code));
  }
};
const Fp8Table kFp8;

typedef uint8_t Bytes16 __attribute__((vector_size(16)));
typedef int32_t Int16 __attribute__((vector_size(64)));
typedef double Double16 __attribute__((vector_size(128)));

// 16 FP8 codes -> 16 doubles without a table or branches: |value| / 2^-9 is the integer
// (8 + m) << (e - 1), or m when e = 0, converted and scaled exactly. Negative zero becomes +0,
// which no sum can tell apart (the float64 accumulators start at +0 and +0 + -0 = +0). The NaN
// codes (0x7F, 0xFF) come out finite; pack_panel patches them.
[[gnu::always_inline]] inline void widen_finite(Bytes16 codes, double* out) {
  const Int16 code = __builtin_convertvector(codes, Int16);
  const Int16 magnitude = code & 0x7F;
  const Int16 exponent = magnitude >> 3;
  const Int16 normal = (exponent + 15) >> 4;  // 1 unless exponent == 0
  const Int16 steps = ((magnitude & 7) | (normal << 3)) << (exponent - normal);
  const Int16 negative = -(code >> 7);  // all ones for a negative value
  const Double16 value = __builtin_convertvector((steps ^ negative) - negative, Double16) * 0.001953125;
  std::memcpy(out, &value, sizeof value);
}

// The 16 x 128 FP8 block of the panel for K block kb, transposed to [k][column] and widened, so the
// kernel reads one contiguous vector of columns per k. The transpose zips vector j with vector
// j + 8 four times: each round rotates the 8 bits (vector, lane) of an element's position by one,
// so four rounds swap the vector (column) and lane (k) numbers.
[[gnu::always_inline]] inline void pack_panel(const uint8_t* b, int64_t k, int64_t kb, double* panel) {
  static_assert(kPanelCols == 16, "the transpose works on 16 x 16 tiles");
  Bytes16 nan_lanes = {};
  for (int64_t i0 = 0; i0 < kBlock; i0 += 16) {
    Bytes16 v[16];
    for (int c = 0; c < 16; ++c) std::memcpy(&v[c], b + c * k + kb * kBlock + i0, 16);
    for (int round = 0; round < 4; ++round) {
      Bytes16 zipped[16];
      for (int j = 0; j < 8; ++j) {
        zipped[2 * j] = __builtin_shufflevector(v[j], v[j + 8], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        zipped[2 * j + 1] =
            __builtin_shufflevector(v[j], v[j + 8], 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
      }
      for (int j = 0; j < 16; ++j) v[j] = zipped[j];
    }
    for (int i = 0; i < 16; ++i) {
      widen_finite(v[i], panel + (i0 + i) * kPanelCols);
      nan_lanes |= reinterpret_cast<Bytes16>((v[i] & 0x7F) == 0x7F);
    }
  }
  uint64_t any_nan[2];
  std::memcpy(any_nan, &nan_lanes, sizeof any_nan);
  if ((any_nan[0] | any_nan[1]) == 0) return;
  for (int64_t i = 0; i < kBlock; ++i)
    for (int32_t c = 0; c < kPanelCols; ++c)
      if ((b[c * k + kb * kBlock + i] & 0x7F) == 0x7F)
        panel[i * kPanelCols + c] = std::numeric_limits<double>::quiet_NaN();
}

// Exact sums over one K block for MR rows and the NV * lanes columns starting at col of the panel.
// The accumulators stay in registers: MR * NV vectors, times kParts interleaved partial sums so
// that at least 8 independent FMA chains hide the FMA latency when MR is small (exact sums do not
// care about the order).
template <typename V, int NV, int MR>
[[gnu::always_inline]] inline void dot_block(const uint8_t* const* a, const double* panel, int32_t col,
                                             double* sums) {
  constexpr int32_t kLanes = static_cast<int32_t>(sizeof(V) / sizeof(double));
  constexpr int kParts = MR * NV >= 8 ? 1 : (MR * NV >= 4 ? 2 : 4);
  V acc[kParts][MR][NV];
  for (int p = 0; p < kParts; ++p)
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[p][r][v] = V{};
  for (int64_t i = 0; i < kBlock; i += kParts) {
    for (int p = 0; p < kParts; ++p) {
      V bv[NV];
      for (int v = 0; v < NV; ++v)
        std::memcpy(&bv[v], panel + (i + p) * kPanelCols + col + v * kLanes, sizeof(V));
      for (int r = 0; r < MR; ++r) {
        const double av = kFp8.value[a[r][i + p]];
        for (int v = 0; v < NV; ++v) acc[p][r][v] += av * bv[v];
      }
    }
  }
  for (int p = 1; p < kParts; ++p)
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[0][r][v] += acc[p][r][v];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) std::memcpy(sums + r * kPanelCols + col + v * kLanes, &acc[0][r][v], sizeof(V));
}

template <typename V, int NV, int MR>
[[gnu::always_inline]] inline void dot_rows(int32_t rows, const uint8_t* const* a, const double* panel,
                                            double* sums) {
  if constexpr (MR > 1) {
    if (rows < MR) return dot_rows<V, NV, MR - 1>(rows, a, panel, sums);
  }
  constexpr int32_t kCols = NV * static_cast<int32_t>(sizeof(V) / sizeof(double));
  for (int32_t col = 0; col < kPanelCols; col += kCols) dot_block<V, NV, MR>(a, panel, col, sums);
}

// acc = fmaf(sa * sb, partial, acc) for one row of the panel, partial = float32(exact sum) rounded
// once. Kept a loop (not unrolled early) with unaliased pointers so the loop vectorizer takes it.
[[gnu::always_inline]] inline void accumulate_block(float scale, const double* __restrict sums,
                                                    float* __restrict acc) {
#pragma GCC unroll 1
  for (int32_t c = 0; c < kPanelCols; ++c) acc[c] = std::fma(scale, static_cast<float>(sums[c]), acc[c]);
}

template <typename V, int NV, int MR>
[[gnu::always_inline]] inline void accumulate_panel_impl(const Fp8Row* rows, int32_t count, const uint8_t* b,
                                                         const float* b_scales, int64_t k, float* acc) {
  alignas(64) double panel[kBlock * kPanelCols];
  alignas(64) double sums[MR * kPanelCols];
  for (int32_t i = 0; i < count * kPanelCols; ++i) acc[i] = 0.0f;
  for (int64_t kb = 0; kb < k / kBlock; ++kb) {
    pack_panel(b, k, kb, panel);
    const float sb = b_scales[kb];
    for (int32_t r0 = 0; r0 < count; r0 += MR) {
      const int32_t n = count - r0 < MR ? count - r0 : MR;
      const uint8_t* a[MR];
      for (int32_t r = 0; r < n; ++r) a[r] = rows[r0 + r].data + kb * kBlock;
      dot_rows<V, NV, MR>(n, a, panel, sums);
      for (int32_t r = 0; r < n; ++r)
        accumulate_block(rows[r0 + r].scales[kb] * sb, sums + r * kPanelCols, acc + (r0 + r) * kPanelCols);
    }
  }
}

typedef double Vec2 __attribute__((vector_size(16)));
typedef double Vec4 __attribute__((vector_size(32)));
typedef double Vec8 __attribute__((vector_size(64)));

using PanelFn = void (*)(const Fp8Row*, int32_t, const uint8_t*, const float*, int64_t, float*);

// Register budgets: 32 zmm hold 8 rows x 2 vectors; 16 ymm hold 4 rows x 2 vectors (8 columns per
// pass); 16 xmm hold 2 rows x 4 vectors.
void panel_generic(const Fp8Row* rows, int32_t count, const uint8_t* b, const float* b_scales, int64_t k,
                   float* acc) {
  accumulate_panel_impl<Vec2, 4, 2>(rows, count, b, b_scales, k, acc);
}

struct Dispatch {
  PanelFn fn;
  const char* name;
};

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void panel_avx512(const Fp8Row* rows, int32_t count,
                                                                       const uint8_t* b, const float* b_scales,
                                                                       int64_t k, float* acc) {
  accumulate_panel_impl<Vec8, 2, 8>(rows, count, b, b_scales, k, acc);
}

__attribute__((target("avx2,fma"))) void panel_avx2(const Fp8Row* rows, int32_t count, const uint8_t* b,
                                                    const float* b_scales, int64_t k, float* acc) {
  accumulate_panel_impl<Vec4, 2, 4>(rows, count, b, b_scales, k, acc);
}

Dispatch choose() {
  __builtin_cpu_init();
  // 2 = avx512, 1 = avx2, 0 = generic; anything else in MEGAMOE_CPU_ISA leaves the best one.
  int cap = 2;
  if (const char* requested = std::getenv("MEGAMOE_CPU_ISA")) {
    if (std::strcmp(requested, "avx2") == 0) cap = 1;
    if (std::strcmp(requested, "generic") == 0) cap = 0;
  }
  if (cap >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("fma"))
    return {panel_avx512, "avx512"};
  if (cap >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {panel_avx2, "avx2"};
  return {panel_generic, "generic"};
}
#else
Dispatch choose() { return {panel_generic, "generic"}; }
#endif

const Dispatch kDispatch = choose();

}  // namespace

void accumulate_panel(const Fp8Row* rows, int32_t count, const uint8_t* b, const float* b_scales, int64_t k,
                      float* acc) {
  kDispatch.fn(rows, count, b, b_scales, k, acc);
}

const char* dot_isa_name() { return kDispatch.name; }

}  // namespace megamoe::cpu
