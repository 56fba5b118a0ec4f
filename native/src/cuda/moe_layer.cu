// The fused MoE layer on the CUDA backend (docs/NUMERICS.md section 4) in three launches, four at
// large batches:
//   1. moe_prepare_kernel: quantize x, clear the combine counters, zero the outputs of fully
//      dropped tokens, and (last block) the routing metadata;
//   (1b. at large batches, moe_group_rows_kernel: the routed rows of x copied into grouped order;)
//   2. up-projection, routed layout, A rows gathered by token (or, after 1b, loaded by TMA),
//      SwiGLU + top-k weight + FP8 re-quantization in the epilogue (activations stay in grouped order);
//   3. down-projection over the grouped activations, BF16 rows per slot, and the fixed-order
//      float32 combine into y by the tile that completes each (token, n-block).
// Every launch reads the token count on the device and all scratch is allocated here, so a
// forward can be captured in a CUDA graph and replayed with other routings and counts.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <memory>

#include "core/backend.h"
#include "core/error.h"
#include "cuda/cuda_layers.h"
#include "cuda/cuda_utils.h"
#include "cuda/moe_kernels.h"
#include "cuda/sm90/gemm/gemm.h"
#include "cuda/sm90/gemm/heuristics.h"
#include "cuda/transforms.h"

namespace megamoe::cuda {
namespace {

Tensor matrix_view(void* data, megamoe_dtype_t dtype, int64_t rows, int64_t cols) {
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.rank = 2;
  t.shape[0] = rows;
  t.shape[1] = cols;
  return t;
}

// Weight preparation, one expert at a time so that the staging stays one matrix: w13 FP8 in the
// gate/up-interleaved row order with its 128x128 scales in gate/up-adjacent order (the scale rows of
// gate block b and up block b next to each other: a 256-column interleaved tile reads its two rows
// as one, sm90/gemm/variants.h), w2 FP8 with its scales.
class WeightPreparer {
 public:
  WeightPreparer(const DeviceLimits& limits, const MoeLayerSpec& spec, cudaStream_t stream)
      : limits_(limits), spec_(spec), stream_(stream) {}

  void prepare(const MoeWeights& w, DeviceArray& w13, DeviceArray& s13, DeviceArray& w2, DeviceArray& s2) {
    const int64_t e_count = spec_.num_experts, h = spec_.hidden, i = spec_.intermediate;
    const int64_t total = 2 * e_count;
    report(0, total);
    const bool fp8 = w.w13.dtype == MEGAMOE_DTYPE_FP8_E4M3;
    if (!fp8) staging_fp8_ = DeviceArray(limits_.device, 2 * i * h);
    if (!fp8 && spec_.w13_interleaved) staging_src_ = DeviceArray(limits_.device, 2 * i * h * dtype_size(w.w13.dtype));
    if (!fp8) staging_scales_ = DeviceArray(limits_.device, (2 * i / 128) * (h / 128) * 4);
    for (int64_t e = 0; e < e_count; ++e) {
      prepare_w13(w, e, w13.get<uint8_t>() + e * 2 * i * h, s13.get<float>() + e * (2 * i / 128) * (h / 128));
      report(2 * e + 1, total);
      prepare_plain(w.w2, w.w2_scales, e, h, i, w2.get<uint8_t>() + e * h * i, s2.get<float>() + e * (h / 128) * (i / 128));
      report(2 * e + 2, total);
    }
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (MoE weight preparation)");
  }

 private:
  void report(int64_t done, int64_t total) {
    if (spec_.progress == nullptr) return;
    // The callback runs on the host while the device works ahead on earlier experts.
    if (spec_.progress(spec_.progress_user_data, done, total) != 0) {
      (void)cudaStreamSynchronize(stream_);
      fail(MEGAMOE_ERROR_CANCELLED, "the progress callback cancelled weight preparation at step ", done, " of ", total,
           "; nothing was created");
    }
  }

  void copy(void* dst, const void* src, int64_t bytes) {
    check(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, stream_),
          "cudaMemcpyAsync (MoE weights)");
  }

  // One expert's canonical w13 scales [2I/128, H/128] (gate rows, then up rows) into gate/up-adjacent
  // order: canonical row b goes to row 2b, row I/128 + b to row 2b + 1.
  void copy_scales_gate_up_adjacent(float* dst, const float* src) {
    const int64_t blocks = spec_.intermediate / 128, cols = spec_.hidden / 128;
    const size_t row_bytes = static_cast<size_t>(cols) * 4;
    for (int64_t up = 0; up < 2; ++up) {
      check(cudaMemcpy2DAsync(dst + up * cols, 2 * row_bytes, src + up * blocks * cols, row_bytes, row_bytes,
                              static_cast<size_t>(blocks), cudaMemcpyDeviceToDevice, stream_),
            "cudaMemcpy2DAsync (MoE w13 scales)");
    }
  }

  // Expert e of w [E, rows, cols] (FP8 + scales, or BF16/FP32) into FP8 q and scales, row order kept.
  void prepare_plain(const Tensor& w, const std::optional<Tensor>& scales, int64_t e, int64_t rows, int64_t cols,
                     uint8_t* q, float* s) {
    const int64_t blocks = (rows / 128) * (cols / 128);
    const auto* src = static_cast<const uint8_t*>(w.data) + e * rows * cols * dtype_size(w.dtype);
    if (w.dtype == MEGAMOE_DTYPE_FP8_E4M3) {
      copy(q, src, rows * cols);
      copy(s, scales->as<const float>() + e * blocks, blocks * 4);
      return;
    }
    quantize_weights(matrix_view(const_cast<uint8_t*>(src), w.dtype, rows, cols),
                     ScaledTensor{matrix_view(q, MEGAMOE_DTYPE_FP8_E4M3, rows, cols),
                                  matrix_view(s, MEGAMOE_DTYPE_FP32, rows / 128, cols / 128)},
                     false, stream_);
  }

  void prepare_w13(const MoeWeights& w, int64_t e, uint8_t* q, float* s) {
    const int64_t h = spec_.hidden, i = spec_.intermediate;
    const Tensor& src = w.w13;
    const int64_t src_bytes = 2 * i * h * dtype_size(src.dtype);
    const auto* expert = static_cast<const uint8_t*>(src.data) + e * src_bytes;
    const int64_t blocks = (2 * i / 128) * (h / 128);
    if (src.dtype == MEGAMOE_DTYPE_FP8_E4M3 && spec_.w13_interleaved) {
      copy(q, expert, src_bytes);
      copy_scales_gate_up_adjacent(s, w.w13_scales->as<const float>() + e * blocks);
      return;
    }
    // Canonical FP8 into the staging matrix (BF16/FP32 interleaved rows are put back in canonical
    // order first: the block scales are those of the canonical matrix), then interleaved into q.
    const uint8_t* canonical = expert;
    if (src.dtype != MEGAMOE_DTYPE_FP8_E4M3 && spec_.w13_interleaved) {
      interleave_gate_up(matrix_view(const_cast<uint8_t*>(expert), src.dtype, 2 * i, h),
                         matrix_view(staging_src_.get(), src.dtype, 2 * i, h), true, stream_);
      canonical = staging_src_.get<uint8_t>();
    }
    if (src.dtype == MEGAMOE_DTYPE_FP8_E4M3) {
      copy_scales_gate_up_adjacent(s, w.w13_scales->as<const float>() + e * blocks);
      interleave_gate_up(matrix_view(const_cast<uint8_t*>(expert), MEGAMOE_DTYPE_FP8_E4M3, 2 * i, h),
                         matrix_view(q, MEGAMOE_DTYPE_FP8_E4M3, 2 * i, h), false, stream_);
      return;
    }
    quantize_weights(matrix_view(const_cast<uint8_t*>(canonical), src.dtype, 2 * i, h),
                     ScaledTensor{matrix_view(staging_fp8_.get(), MEGAMOE_DTYPE_FP8_E4M3, 2 * i, h),
                                  matrix_view(staging_scales_.get(), MEGAMOE_DTYPE_FP32, 2 * i / 128, h / 128)},
                     false, stream_);
    copy_scales_gate_up_adjacent(s, staging_scales_.get<const float>());
    interleave_gate_up(matrix_view(staging_fp8_.get(), MEGAMOE_DTYPE_FP8_E4M3, 2 * i, h),
                       matrix_view(q, MEGAMOE_DTYPE_FP8_E4M3, 2 * i, h), false, stream_);
  }

  DeviceLimits limits_;
  const MoeLayerSpec& spec_;
  cudaStream_t stream_;
  DeviceArray staging_fp8_;
  DeviceArray staging_src_;
  DeviceArray staging_scales_;
};

class CudaMoeLayer final : public MoeLayer {
 public:
  CudaMoeLayer(const DeviceLimits& limits, const MoeLayerSpec& spec, const MoeWeights& weights, cudaStream_t stream)
      : limits_(limits), spec_(spec) {
    const int dev = limits.device;
    const int64_t e = spec.num_experts, h = spec.hidden, i = spec.intermediate, k = spec.top_k, t = spec.max_tokens;
    const int64_t slots = t * k;
    w13_ = DeviceArray(dev, e * 2 * i * h);
    s13_ = DeviceArray(dev, e * (2 * i / 128) * (h / 128) * 4);
    w2_ = DeviceArray(dev, e * h * i);
    s2_ = DeviceArray(dev, e * (h / 128) * (i / 128) * 4);
    WeightPreparer(limits, spec, stream).prepare(weights, w13_, s13_, w2_, s2_);
    // docs/API.md, "Workspace of a MoE layer".
    qx_ = DeviceArray(dev, t * h);
    sx_ = DeviceArray(dev, t * (h / 128) * 4);
    offsets_ = DeviceArray(dev, routing_table_ints(e) * 4);
    order_ = DeviceArray(dev, slots * 4);
    act_ = DeviceArray(dev, slots * i);
    act_scales_ = DeviceArray(dev, slots * (i / 128) * 4);
    z_ = DeviceArray(dev, slots * h * 2);
    counters_ = DeviceArray(dev, t * (h / 128) * 4);
    token_masks_ = DeviceArray(dev, t * 4);
    workspace_bytes_ = qx_.bytes() + sx_.bytes() + offsets_.bytes() + order_.bytes() + act_.bytes() +
                       act_scales_.bytes() + z_.bytes() + counters_.bytes() + token_masks_.bytes();
  }

  int64_t workspace_bytes() const override { return workspace_bytes_; }

  void forward(const MoeForwardArgs& args, void* stream) override {
    const int64_t tokens = args.x.dim(0);
    if (tokens == 0) return;
    DeviceGuard guard(limits_.device);
    const cudaStream_t s = as_stream(stream);
    const bool quantized = args.x.dtype == MEGAMOE_DTYPE_FP8_E4M3;
    const uint32_t e = static_cast<uint32_t>(spec_.num_experts), k = static_cast<uint32_t>(spec_.top_k);
    const uint32_t h = static_cast<uint32_t>(spec_.hidden), i = static_cast<uint32_t>(spec_.intermediate);

    MoePrepareArgs prep;
    prep.routing.topk_idx = args.topk_idx.data;
    prep.routing.topk_int64 = args.topk_idx.dtype == MEGAMOE_DTYPE_INT64;
    prep.routing.tokens = static_cast<uint32_t>(tokens);
    prep.routing.num_tokens = args.num_tokens ? args.num_tokens->as<const int32_t>() : nullptr;
    prep.routing.top_k = k;
    prep.routing.num_experts = e;
    prep.routing.offsets = offsets_.get<int32_t>();
    prep.routing.order = order_.get<int32_t>();
    prep.routing.expert_counts = args.expert_counts ? args.expert_counts->as<int32_t>() : nullptr;
    prep.x = quantized ? nullptr : args.x.as<const __nv_bfloat16>();
    prep.qx = qx_.get<uint8_t>();
    prep.sx = sx_.get<float>();
    prep.hidden = h;
    prep.counters = counters_.get<int32_t>();
    prep.counter_cols = h / 128;
    prep.token_masks = token_masks_.get<uint32_t>();
    // FP32 y: the float32 sums expert parallelism adds up across ranks (core/backend.h).
    const bool y_f32 = args.y.dtype == MEGAMOE_DTYPE_FP32;
    prep.y = args.y.data;
    prep.y_elem_bytes = y_f32 ? 4 : 2;
    launch_moe_prepare(prep, limits_.device, limits_.num_sms, s);

    const uint32_t slots = static_cast<uint32_t>(tokens) * k;
    const uint8_t* x_rows = quantized ? args.x.as<const uint8_t>() : qx_.get<const uint8_t>();
    const float* x_scales = quantized ? args.x_scales->as<const float>() : sx_.get<const float>();
    const bool grouped = sm90::moe_up_rows_grouped(slots, e, std::getenv("MEGAMOE_CUDA_MOE_GROUPED_ROWS"));
    if (grouped) {
      // The rows in grouped order live in z's memory, which the down-projection writes only after
      // the up-projection has read them (docs/API.md, workspace).
      MoeGroupRowsArgs rows;
      rows.offsets = offsets_.get<const int32_t>();
      rows.order = order_.get<const int32_t>();
      rows.num_experts = e;
      rows.top_k = k;
      rows.max_rows = slots;
      rows.x = x_rows;
      rows.sx = x_scales;
      rows.rows = z_.get<uint8_t>();
      rows.row_scales = reinterpret_cast<float*>(z_.get<uint8_t>() + uint64_t{slots} * h);
      rows.hidden = h;
      launch_moe_group_rows(rows, limits_.num_sms, s);
      x_rows = rows.rows;
      x_scales = rows.row_scales;
    }

    sm90::GemmArgs up = routed_args(grouped ? sm90::GemmEpilogue::SwigluFp8Grouped : sm90::GemmEpilogue::SwigluFp8,
                                    slots, 2 * i, h);
    up.b = w13_.get();
    up.expert_specialization = spec_.expert_specialization_up;
    up.params.op.a = x_rows;
    up.params.op.sfa = x_scales;
    up.params.op.sfb = s13_.get<const float>();
    up.params.routed.slot_weights = args.topk_weights.as<const float>();
    sm90::SwigluParams& act = up.params.swiglu;
    act.act = act_.get<uint8_t>();
    act.act_scales = act_scales_.get<float>();
    act.act_cols = i;
    act.weight_scale = spec_.routed_scaling_factor;
    act.alpha = spec_.activation.alpha;
    act.beta = spec_.activation.beta;
    act.clamp = spec_.activation.clamp;
    sm90::gemm(up, limits_, s);

    sm90::GemmArgs down = routed_args(sm90::GemmEpilogue::CombineF32, slots, h, i);
    down.b = w2_.get();
    down.expert_specialization = spec_.expert_specialization_down;
    down.params.op.a = act_.get<const uint8_t>();
    down.params.op.sfa = act_scales_.get<const float>();
    down.params.op.sfb = s2_.get<const float>();
    sm90::CombineParams& combine = down.params.combine;
    combine.z = z_.get<__nv_bfloat16>();
    combine.counters = counters_.get<int32_t>();
    combine.token_masks = token_masks_.get<const uint32_t>();
    if (y_f32) {
      combine.y_f32 = args.y.as<float>();
    } else {
      combine.y = args.y.as<__nv_bfloat16>();
    }
    sm90::gemm(down, limits_, s);
  }

 private:
  // A GEMM over the routed slots [rows] of this layer's experts, N x K.
  sm90::GemmArgs routed_args(sm90::GemmEpilogue epilogue, uint32_t rows, uint32_t n, uint32_t k) const {
    sm90::GemmArgs g;
    g.kind = sm90::GemmKind::Routed;
    g.epilogue = epilogue;
    sm90::KernelParams& p = g.params;
    p.layout.groups_data = offsets_.get();
    p.layout.rows = rows;
    p.layout.n = n;
    p.layout.k = k;
    p.layout.groups = static_cast<uint32_t>(spec_.num_experts);
    p.routed.row_slot = order_.get<int32_t>();
    p.routed.top_k = static_cast<uint32_t>(spec_.top_k);
    return g;
  }

  DeviceLimits limits_;
  MoeLayerSpec spec_;
  DeviceArray w13_, s13_, w2_, s2_;
  DeviceArray qx_, sx_, offsets_, order_, act_, act_scales_, z_, counters_, token_masks_;
  int64_t workspace_bytes_ = 0;
};

}  // namespace

std::unique_ptr<MoeLayer> make_moe_layer(const DeviceLimits& limits, const MoeLayerSpec& spec, const MoeWeights& weights,
                                         void* stream) {
  // H is the up-projection's K and I the down-projection's.
  if (spec.hidden / 128 > sm90::kGemmMaxKBlocks || spec.intermediate / 128 > sm90::kGemmMaxKBlocks) {
    fail(MEGAMOE_ERROR_UNSUPPORTED, "the CUDA MoE layer supports hidden and intermediate sizes up to ",
         sm90::kGemmMaxKBlocks * 128, " (got H = ", spec.hidden, ", I = ", spec.intermediate, ")");
  }
  DeviceGuard guard(limits.device);
  return std::make_unique<CudaMoeLayer>(limits, spec, weights, as_stream(stream));
}

}  // namespace megamoe::cuda
