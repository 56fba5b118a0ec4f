#include "cpu/quantize.h"

#include <algorithm>
#include <atomic>

#include "core/int_math.h"
#include "cpu/block_scaled_dot.h"

namespace megamoe::cpu {

namespace {

constexpr int64_t kGrainElements = 1 << 16;  // elements per scheduled range of an elementwise loop

int64_t groups(int64_t extent) { return ceil_div<int64_t>(extent, kBlock); }

int64_t rows_per_range(int64_t cols) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(cols, 1)); }

bool has_nonfinite(const float* x, int64_t n) {
  bool found = false;
  for (int64_t i = 0; i < n; ++i) found |= is_nonfinite(x[i]);
  return found;
}
bool has_nonfinite(const uint16_t* bf16, int64_t n) {
  bool found = false;
  for (int64_t i = 0; i < n; ++i) found |= (bf16[i] & 0x7F80u) == 0x7F80u;
  return found;
}

inline void narrow(float x, float* out) { *out = x; }
inline void narrow(float x, uint16_t* out) { *out = float_to_bf16(x); }

// `nonfinite`: NULL, or where to count the rows holding a NaN or an infinity.
template <typename In>
void quantize_rows(ThreadPool& pool, const In* x, int64_t rows, int64_t cols, bool ue8m0, uint8_t* q,
                   float* scales, std::atomic<int64_t>* nonfinite) {
  const int64_t g = groups(cols);
  pool.parallel_ranges(rows, rows_per_range(cols), [&](int64_t begin, int64_t end) {
    if (nonfinite != nullptr) {
      int64_t found = 0;
      for (int64_t m = begin; m < end; ++m) found += has_nonfinite(x + m * cols, cols) ? 1 : 0;
      nonfinite->fetch_add(found, std::memory_order_relaxed);
    }
    for (int64_t m = begin; m < end; ++m) {
      for (int64_t j = 0; j < g; ++j) {
        const int64_t c0 = m * cols + j * kBlock;
        const int64_t n = std::min(kBlock, cols - j * kBlock);
        const float sf = group_scale(span_amax(x + c0, n), ue8m0);
        quantize_span(x + c0, n, 1.0f / sf, q + c0);
        scales[m * g + j] = sf;
      }
    }
  });
}

template <typename In>
void quantize_blocks(ThreadPool& pool, const In* w, int64_t count, int64_t rows, int64_t cols, bool ue8m0,
                     uint8_t* q, float* scales) {
  const int64_t rb = groups(rows), cb = groups(cols);
  pool.parallel_for(count * rb, [&](int64_t task) {
    const int64_t e = task / rb, r0 = task % rb * kBlock;
    const int64_t nr = std::min(kBlock, rows - r0);
    const In* src = w + (e * rows + r0) * cols;
    uint8_t* dst = q + (e * rows + r0) * cols;
    for (int64_t j = 0; j < cb; ++j) {
      const int64_t c0 = j * kBlock;
      const int64_t nc = std::min(kBlock, cols - c0);
      float amax = 0.0f;
      for (int64_t r = 0; r < nr; ++r) amax = std::fmax(amax, span_amax(src + r * cols + c0, nc));
      const float sf = group_scale(amax, ue8m0);
      const float inv = 1.0f / sf;
      for (int64_t r = 0; r < nr; ++r) quantize_span(src + r * cols + c0, nc, inv, dst + r * cols + c0);
      scales[task * cb + j] = sf;
    }
  });
}

// out[r, c] = fp8(q[r, c]) * scale of (r, c); `scale_of(r, c)` locates the scale.
template <typename Out, typename ScaleOf>
void dequantize(ThreadPool& pool, const uint8_t* q, int64_t rows, int64_t cols, ScaleOf scale_of, Out* out) {
  pool.parallel_ranges(rows, rows_per_range(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t c = 0; c < cols; ++c)
        narrow(fp8_e4m3_to_float(q[r * cols + c]) * scale_of(r, c), out + r * cols + c);
  });
}

template <typename ScaleOf>
void dequantize_to(ThreadPool& pool, const uint8_t* q, int64_t rows, int64_t cols, ScaleOf scale_of,
                   const Tensor& out) {
  if (out.dtype == MEGAMOE_DTYPE_BF16) {
    dequantize(pool, q, rows, cols, scale_of, out.as<uint16_t>());
  } else {
    dequantize(pool, q, rows, cols, scale_of, out.as<float>());
  }
}

}  // namespace

void quantize_weight_blocks(ThreadPool& pool, const void* w, megamoe_dtype_t dtype, int64_t count, int64_t rows,
                            int64_t cols, bool ue8m0, uint8_t* q, float* scales) {
  if (dtype == MEGAMOE_DTYPE_BF16) {
    quantize_blocks(pool, static_cast<const uint16_t*>(w), count, rows, cols, ue8m0, q, scales);
  } else {
    quantize_blocks(pool, static_cast<const float*>(w), count, rows, cols, ue8m0, q, scales);
  }
}

void quantize_activations(ThreadPool& pool, const Tensor& x, const ScaledTensor& out, bool ue8m0,
                          int32_t* nonfinite_rows) {
  const int64_t rows = x.dim(0), cols = x.dim(1);
  auto* q = out.data.as<uint8_t>();
  auto* scales = out.scales.as<float>();
  std::atomic<int64_t> nonfinite{0};
  std::atomic<int64_t>* count = nonfinite_rows != nullptr ? &nonfinite : nullptr;
  if (x.dtype == MEGAMOE_DTYPE_BF16) {
    quantize_rows(pool, x.as<const uint16_t>(), rows, cols, ue8m0, q, scales, count);
  } else {
    quantize_rows(pool, x.as<const float>(), rows, cols, ue8m0, q, scales, count);
  }
  if (nonfinite_rows != nullptr) {  // wraps like the device's 32-bit atomics
    *nonfinite_rows = static_cast<int32_t>(static_cast<uint32_t>(*nonfinite_rows) +
                                           static_cast<uint32_t>(nonfinite.load(std::memory_order_relaxed)));
  }
}

void dequantize_activations(ThreadPool& pool, const ScaledTensor& q, const Tensor& out) {
  const int64_t rows = q.data.dim(0), cols = q.data.dim(1), g = groups(cols);
  const auto* scales = q.scales.as<const float>();
  dequantize_to(
      pool, q.data.as<const uint8_t>(), rows, cols,
      [&](int64_t r, int64_t c) { return scales[r * g + c / kBlock]; }, out);
}

void quantize_weights(ThreadPool& pool, const Tensor& w, const ScaledTensor& out, bool ue8m0) {
  const int64_t count = w.rank == 3 ? w.dim(0) : 1;
  quantize_weight_blocks(pool, w.data, w.dtype, count, w.dim(w.rank - 2), w.dim(w.rank - 1), ue8m0,
                         out.data.as<uint8_t>(), out.scales.as<float>());
}

void dequantize_weights(ThreadPool& pool, const ScaledTensor& q, const Tensor& out) {
  const Tensor& data = q.data;
  const int64_t rows = data.dim(data.rank - 2), cols = data.dim(data.rank - 1);
  const int64_t count = data.rank == 3 ? data.dim(0) : 1;
  const int64_t rb = groups(rows), cb = groups(cols);
  const auto* scales = q.scales.as<const float>();
  // Rows of all matrices flattened: flat row r is row r % rows of matrix r / rows.
  dequantize_to(
      pool, data.as<const uint8_t>(), count * rows, cols,
      [&](int64_t r, int64_t c) { return scales[(r / rows * rb + r % rows / kBlock) * cb + c / kBlock]; }, out);
}

}  // namespace megamoe::cpu
