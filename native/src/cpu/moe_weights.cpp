#include "cpu/moe_weights.h"

#include <cstring>

#include "core/error.h"
#include "cpu/interleave.h"
#include "cpu/quantize.h"

namespace megamoe::cpu {

namespace {

constexpr int64_t kCopyGrainBytes = int64_t{1} << 20;

void parallel_copy(ThreadPool& pool, void* dst, const void* src, int64_t bytes) {
  pool.parallel_ranges(bytes, kCopyGrainBytes, [&](int64_t begin, int64_t end) {
    std::memcpy(static_cast<uint8_t*>(dst) + begin, static_cast<const uint8_t*>(src) + begin,
                static_cast<size_t>(end - begin));
  });
}

class Progress {
 public:
  Progress(const MoeLayerSpec& spec, int64_t total) : spec_(spec), total_(total) { report(); }
  void step() {
    ++done_;
    report();
  }

 private:
  void report() const {
    if (spec_.progress != nullptr && spec_.progress(spec_.progress_user_data, done_, total_) != 0)
      fail(MEGAMOE_ERROR_CANCELLED, "the progress callback cancelled weight preparation at step ", done_, " of ",
           total_, "; nothing was created");
  }
  const MoeLayerSpec& spec_;
  int64_t total_;
  int64_t done_ = 0;
};

// Expert e of `w` [E, rows, cols] into q (FP8) and scales, canonical row order.
// `staging` holds one source matrix when interleaved non-FP8 rows must be reordered first.
void prepare_matrix(ThreadPool& pool, const Tensor& w, const std::optional<Tensor>& w_scales, int64_t e,
                    int64_t interleaved_intermediate, AlignedBuffer& staging, uint8_t* q, float* scales) {
  const int64_t rows = w.dim(1), cols = w.dim(2);
  const int64_t row_bytes = cols * dtype_size(w.dtype);
  const int64_t scale_count = (rows / 128) * (cols / 128);
  const auto* src = w.as<const uint8_t>() + e * rows * row_bytes;
  if (w.dtype == MEGAMOE_DTYPE_FP8_E4M3) {
    if (interleaved_intermediate > 0) {
      interleave_rows(pool, src, q, 1, interleaved_intermediate, row_bytes, true);
    } else {
      parallel_copy(pool, q, src, rows * row_bytes);
    }
    std::memcpy(scales, w_scales->as<const float>() + e * scale_count, static_cast<size_t>(scale_count) * 4);
    return;
  }
  if (interleaved_intermediate > 0) {
    interleave_rows(pool, src, staging.as<void>(), 1, interleaved_intermediate, row_bytes, true);
    src = staging.as<const uint8_t>();
  }
  quantize_weight_blocks(pool, src, w.dtype, 1, rows, cols, false, q, scales);
}

}  // namespace

PreparedWeights prepare_moe_weights(ThreadPool& pool, const MoeLayerSpec& spec, const MoeWeights& weights) {
  const int64_t experts = spec.num_experts, h = spec.hidden, i = spec.intermediate;
  PreparedWeights out{AlignedBuffer(experts * 2 * i * h), AlignedBuffer(experts * (2 * i / 128) * (h / 128) * 4),
                      AlignedBuffer(experts * h * i), AlignedBuffer(experts * (h / 128) * (i / 128) * 4)};
  const bool stage = spec.w13_interleaved && weights.w13.dtype != MEGAMOE_DTYPE_FP8_E4M3;
  AlignedBuffer staging(stage ? 2 * i * h * dtype_size(weights.w13.dtype) : 0);
  Progress progress(spec, 2 * experts);
  for (int64_t e = 0; e < experts; ++e) {
    prepare_matrix(pool, weights.w13, weights.w13_scales, e, spec.w13_interleaved ? i : 0, staging,
                   out.w13.as<uint8_t>() + e * 2 * i * h, out.w13_scales.as<float>() + e * (2 * i / 128) * (h / 128));
    progress.step();
    prepare_matrix(pool, weights.w2, weights.w2_scales, e, 0, staging, out.w2.as<uint8_t>() + e * h * i,
                   out.w2_scales.as<float>() + e * (h / 128) * (i / 128));
    progress.step();
  }
  return out;
}

}  // namespace megamoe::cpu
