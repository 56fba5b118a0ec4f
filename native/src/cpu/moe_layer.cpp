// Forward pass, per pass of up to chunk_tokens() tokens (each token's output depends on that token
// alone, so splitting the batch changes no bit):
//   1. quantize x (BF16) per 1x128 group, or use the caller's FP8 x and scales;
//   2. group the slots by expert (core/routing.h);
//   3. per (row group of one expert, 128 columns of I): gate and up accumulators, activation times
//      w * rsf, and the requantization of that 128-wide group, fused so no [slots, 2I] buffer exists;
//   4. down-projection accumulators z per slot, rounded to BF16;
//   5. per token, y = bf16(float32 sum of z over its slots in slot order), or the float32 sum itself
//      when y is FP32 (expert parallelism adds those up across ranks before the one rounding).
#include "cpu/moe_layer.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <vector>

#include "core/formats.h"
#include "core/routing.h"
#include "cpu/aligned_buffer.h"
#include "cpu/gemm_driver.h"
#include "cpu/index_checks.h"
#include "cpu/moe_weights.h"
#include "cpu/quantize.h"

namespace megamoe::cpu {

namespace {

constexpr int64_t kMinChunkTokens = 256;
constexpr int64_t kMaxDownOutputBytes = int64_t{1} << 30;
constexpr int64_t kCombineColumns = 512;

// Tokens per pass: enough to fill about one row group (kMaxPanelRows rows, which share each
// widened weight panel) per expert, at least kMinChunkTokens, at most max_tokens, with the BF16
// down-projection outputs under kMaxDownOutputBytes.
int64_t chunk_tokens(const MoeLayerSpec& spec) {
  const int64_t wanted =
      std::max(kMinChunkTokens, (int64_t{kMaxPanelRows} * spec.num_experts + spec.top_k - 1) / spec.top_k);
  const int64_t affordable = std::max<int64_t>(1, kMaxDownOutputBytes / (spec.top_k * spec.hidden * 2));
  return std::min({spec.max_tokens, wanted, affordable});
}

float activation(float g, float u, float weight, const ActivationSpec& act) {
  if (act.clamp > 0.0f) {
    g = std::fmin(g, act.clamp);
    u = std::fmin(std::fmax(u, -act.clamp), act.clamp);
  }
  const float s = 1.0f / (1.0f + std::exp(-(act.alpha * g)));
  const float a = (g * s) * (u + act.beta);
  return a * weight;
}

class CpuMoeLayer final : public MoeLayer {
 public:
  CpuMoeLayer(std::shared_ptr<ThreadPool> pool, const MoeLayerSpec& spec, const MoeWeights& weights)
      : pool_(std::move(pool)),
        spec_(spec),
        weights_(prepare_moe_weights(*pool_, spec, weights)),
        chunk_(chunk_tokens(spec)),
        slots_(chunk_ * spec.top_k),
        qx_(chunk_ * spec.hidden),
        sx_(chunk_ * (spec.hidden / kBlock) * 4),
        act_(slots_ * spec.intermediate * 4),
        qa_(slots_ * spec.intermediate),
        sa_(slots_ * (spec.intermediate / kBlock) * 4),
        z_(slots_ * spec.hidden * 2),
        offsets_(static_cast<size_t>(spec.num_experts) + 1),
        order_(static_cast<size_t>(slots_)),
        position_(static_cast<size_t>(slots_)),
        up_rows_(static_cast<size_t>(slots_)),
        down_rows_(static_cast<size_t>(slots_)),
        counts_(static_cast<size_t>(spec.num_experts)) {
    groups_.reserve(static_cast<size_t>(slots_ / kMaxPanelRows + spec.num_experts));
    const int64_t e = spec.num_experts, h = spec.hidden, i = spec.intermediate;
    w2_ = {tensor_view(weights_.w2.as<void>(), MEGAMOE_DTYPE_FP8_E4M3, {e, h, i}),
           tensor_view(weights_.w2_scales.as<void>(), MEGAMOE_DTYPE_FP32, {e, h / kBlock, i / kBlock})};
    const auto bytes = [](const auto& v) { return static_cast<int64_t>(v.capacity() * sizeof(v[0])); };
    workspace_bytes_ = qx_.bytes() + sx_.bytes() + act_.bytes() + qa_.bytes() + sa_.bytes() + z_.bytes() +
                       bytes(offsets_) + bytes(order_) + bytes(position_) + bytes(up_rows_) + bytes(down_rows_) +
                       bytes(counts_) + bytes(groups_);
  }

  // With C = chunk_tokens() and S = C * top_k slots per pass:
  //   C * H (x quantized) + C * H / 128 * 4 (its scales) + S * I * 4 (activations)
  // + S * I (activations requantized) + S * I / 128 * 4 (their scales) + S * H * 2 (z, BF16)
  // + S * (8 + 8 + 16 + 16) (slot order, slot positions, two row tables)
  // + (E + 1) * 8 + E * 8 (expert offsets and counts) + (S / 64 + E) * 24 (row groups).
  // Fixed at creation; computed once so that reading it never races with a forward in flight.
  int64_t workspace_bytes() const override { return workspace_bytes_; }

  void forward(const MoeForwardArgs& args, void* /*stream*/) override {
    const int64_t t_all = args.x.dim(0);
    const int64_t tokens = checked_num_tokens(args.num_tokens, t_all, "x");
    check_topk_idx(args.topk_idx, tokens, spec_.num_experts);

    std::fill(counts_.begin(), counts_.end(), 0);
    for (int64_t t0 = 0; t0 < tokens; t0 += chunk_) forward_chunk(args, t0, std::min(tokens, t0 + chunk_));
    if (args.expert_counts) {
      auto* out = args.expert_counts->as<int32_t>();
      for (size_t e = 0; e < counts_.size(); ++e)  // wraps like the device's 32-bit atomics
        out[e] = static_cast<int32_t>(static_cast<uint32_t>(out[e]) + static_cast<uint32_t>(counts_[e]));
    }
  }

 private:
  void forward_chunk(const MoeForwardArgs& args, int64_t t0, int64_t t1) {
    const int64_t tokens = t1 - t0, h = spec_.hidden, i = spec_.intermediate, top_k = spec_.top_k;
    const uint8_t* x = qx_.as<uint8_t>();
    const float* x_scales = sx_.as<float>();
    int64_t x_row0 = 0;  // row of `x` holding token t0
    if (args.x.dtype == MEGAMOE_DTYPE_BF16) {
      const Tensor chunk = tensor_view(args.x.as<uint16_t>() + t0 * h, MEGAMOE_DTYPE_BF16, {tokens, h});
      quantize_activations(*pool_, chunk,
                           {tensor_view(qx_.as<void>(), MEGAMOE_DTYPE_FP8_E4M3, {tokens, h}),
                            tensor_view(sx_.as<void>(), MEGAMOE_DTYPE_FP32, {tokens, h / kBlock})},
                           false);
    } else {
      x = args.x.as<const uint8_t>();
      x_scales = args.x_scales->as<const float>();
      x_row0 = t0;
    }

    group_slots_by_expert(
        tokens, spec_.top_k, spec_.num_experts, [&](int64_t s) { return index_at(args.topk_idx, t0 * top_k + s); },
        offsets_.data(), order_.data(), position_.data());
    groups_.clear();
    for (int32_t e = 0; e < spec_.num_experts; ++e) {
      const int64_t begin = offsets_[static_cast<size_t>(e)], count = offsets_[static_cast<size_t>(e) + 1] - begin;
      counts_[static_cast<size_t>(e)] += count;
      add_row_groups(groups_, e, begin, count);
    }
    const int64_t used = offsets_.back();
    for (int64_t p = 0; p < used; ++p) {
      const int64_t row = x_row0 + order_[static_cast<size_t>(p)] / top_k;
      up_rows_[static_cast<size_t>(p)] = {x + row * h, x_scales + row * (h / kBlock)};
      down_rows_[static_cast<size_t>(p)] = {qa_.as<uint8_t>() + p * i, sa_.as<float>() + p * (i / kBlock)};
    }

    up_projection(args.topk_weights.as<const float>() + t0 * top_k);
    run_row_groups(*pool_, groups_, down_rows_.data(), w2_, [&](int64_t row, int64_t col, const float* acc) {
      uint16_t* z = z_.as<uint16_t>() + row * h + col;
      for (int32_t c = 0; c < kPanelCols; ++c) z[c] = float_to_bf16(acc[c]);
    });
    combine(args.y, t0, tokens);
  }

  // Steps 2-4 of NUMERICS.md section 4 for every slot: qa, sa. `weights` are the chunk's top-k weights.
  void up_projection(const float* weights) {
    const int64_t h = spec_.hidden, i = spec_.intermediate;
    const int64_t blocks = i / kBlock, h_blocks = h / kBlock;
    const auto* w13 = weights_.w13.as<const uint8_t>();
    const auto* w13_scales = weights_.w13_scales.as<const float>();
    pool_->parallel_for(static_cast<int64_t>(groups_.size()) * blocks, [&](int64_t task) {
      const RowGroup& group = groups_[static_cast<size_t>(task / blocks)];
      const int64_t block = task % blocks;
      alignas(64) float gate[kMaxPanelRows * kPanelCols];
      alignas(64) float up[kMaxPanelRows * kPanelCols];
      float weight[kMaxPanelRows];
      for (int32_t r = 0; r < group.count; ++r)
        weight[r] = weights[order_[static_cast<size_t>(group.first + r)]] * spec_.routed_scaling_factor;
      const Fp8Row* rows = up_rows_.data() + group.first;
      float* act = act_.as<float>() + group.first * i + block * kBlock;  // row r at act + r * i
      const int64_t expert_row0 = group.expert * 2 * i;
      for (int64_t col = 0; col < kBlock; col += kPanelCols) {
        const int64_t gate_row = expert_row0 + block * kBlock + col, up_row = gate_row + i;
        accumulate_panel(rows, group.count, w13 + gate_row * h, w13_scales + gate_row / kBlock * h_blocks, h, gate);
        accumulate_panel(rows, group.count, w13 + up_row * h, w13_scales + up_row / kBlock * h_blocks, h, up);
        for (int32_t r = 0; r < group.count; ++r)
          for (int32_t c = 0; c < kPanelCols; ++c)
            act[r * i + col + c] =
                activation(gate[r * kPanelCols + c], up[r * kPanelCols + c], weight[r], spec_.activation);
      }
      for (int32_t r = 0; r < group.count; ++r) {
        const int64_t p = group.first + r;
        sa_.as<float>()[p * blocks + block] =
            quantize_group(act + r * i, kBlock, qa_.as<uint8_t>() + p * i + block * kBlock);
      }
    });
  }

  // Step 6: y rows of the chunk's tokens [t0, t0 + tokens) from z, slots in order, starting from +0.
  void combine(const Tensor& y, int64_t t0, int64_t tokens) {
    const int64_t h = spec_.hidden, top_k = spec_.top_k;
    const int64_t ranges = (h + kCombineColumns - 1) / kCombineColumns;
    pool_->parallel_for(tokens * ranges, [&](int64_t task) {
      const int64_t t = task / ranges, c0 = task % ranges * kCombineColumns;
      const int64_t width = std::min(kCombineColumns, h - c0);
      float sum[kCombineColumns];
      std::fill(sum, sum + width, 0.0f);
      for (int64_t j = 0; j < top_k; ++j) {
        const int64_t p = position_[static_cast<size_t>(t * top_k + j)];
        if (p < 0) continue;
        const uint16_t* z = z_.as<const uint16_t>() + p * h + c0;
        for (int64_t c = 0; c < width; ++c) sum[c] += bf16_to_float(z[c]);
      }
      const int64_t out = (t0 + t) * h + c0;
      if (y.dtype == MEGAMOE_DTYPE_FP32) {
        std::copy(sum, sum + width, y.as<float>() + out);
      } else {
        for (int64_t c = 0; c < width; ++c) y.as<uint16_t>()[out + c] = float_to_bf16(sum[c]);
      }
    });
  }

  std::shared_ptr<ThreadPool> pool_;
  MoeLayerSpec spec_;
  PreparedWeights weights_;
  ScaledTensor w2_;
  int64_t chunk_;  // tokens per pass
  int64_t slots_;  // chunk_ * top_k
  AlignedBuffer qx_, sx_;  // x quantized, [chunk, H] FP8 and [chunk, H/128] FP32
  AlignedBuffer act_;      // activations times weight, [slots, I] FP32 (off the stack: tasks may run on
                           // the caller's thread, whose stack size is unknown)
  AlignedBuffer qa_, sa_;  // activations requantized, [slots, I] FP8 and [slots, I/128] FP32
  AlignedBuffer z_;        // down-projection rows, [slots, H] BF16, by position in order_
  std::vector<int64_t> offsets_, order_, position_;
  std::vector<Fp8Row> up_rows_, down_rows_;  // A rows of each position in order_
  std::vector<RowGroup> groups_;
  std::vector<int64_t> counts_;  // slots per expert over the whole forward
  int64_t workspace_bytes_ = 0;
};

}  // namespace

std::unique_ptr<MoeLayer> make_cpu_moe_layer(std::shared_ptr<ThreadPool> pool, const MoeLayerSpec& spec,
                                             const MoeWeights& weights) {
  return std::make_unique<CpuMoeLayer>(std::move(pool), spec, weights);
}

}  // namespace megamoe::cpu
