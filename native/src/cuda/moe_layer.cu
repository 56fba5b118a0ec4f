// The fused MoE layer on the CUDA backend (docs/NUMERICS.md section 4) in three launches:
//   1. moe_prepare_kernel: quantize x, clear the combine counters, zero the outputs of fully
//      dropped tokens, and (last block) the routing metadata;
//   2. up-projection, routed layout, A rows gathered by token, SwiGLU + top-k weight + FP8
//      re-quantization in the epilogue (activations stay in grouped order);
//   3. down-projection over the grouped activations, BF16 rows per slot, and the fixed-order
//      float32 combine into y by the tile that completes each (token, n-block).
// Every launch reads the token count on the device and all scratch is allocated here, so a
// forward can be captured in a CUDA graph and replayed with other routings and counts.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <memory>

#include "core/backend.h"
#include "core/error.h"
#include "cuda/cuda_layers.h"
#include "cuda/cuda_utils.h"
#include "cuda/moe_kernels.h"
#include "cuda/sm90/gemm/gemm.h"
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
// gate/up-interleaved row order with its canonical 128x128 scales (the up-projection's epilogue
// maps them), w2 FP8 with its scales.
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
    if (src.dtype == MEGAMOE_DTYPE_FP8_E4M3 && spec_.w13_interleaved) {
      copy(q, expert, src_bytes);
      const int64_t blocks = (2 * i / 128) * (h / 128);
      copy(s, w.w13_scales->as<const float>() + e * blocks, blocks * 4);
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
      const int64_t blocks = (2 * i / 128) * (h / 128);
      copy(s, w.w13_scales->as<const float>() + e * blocks, blocks * 4);
      interleave_gate_up(matrix_view(const_cast<uint8_t*>(expert), MEGAMOE_DTYPE_FP8_E4M3, 2 * i, h),
                         matrix_view(q, MEGAMOE_DTYPE_FP8_E4M3, 2 * i, h), false, stream_);
      return;
    }
    quantize_weights(matrix_view(const_cast<uint8_t*>(canonical), src.dtype, 2 * i, h),
                     ScaledTensor{matrix_view(staging_fp8_.get(), MEGAMOE_DTYPE_FP8_E4M3, 2 * i, h),
                                  matrix_view(s, MEGAMOE_DTYPE_FP32, 2 * i / 128, h / 128)},
                     false, stream_);
    interleave_gate_up(matrix_view(staging_fp8_.get(), MEGAMOE_DTYPE_FP8_E4M3, 2 * i, h),
                       matrix_view(q, MEGAMOE_DTYPE_FP8_E4M3, 2 * i, h), false, stream_);
  }

  DeviceLimits limits_;
  const MoeLayerSpec& spec_;
  cudaStream_t stream_;
  DeviceArray staging_fp8_;
  DeviceArray staging_src_;
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

    sm90::GemmArgs up = routed_args(sm90::GemmEpilogue::SwigluFp8, static_cast<uint32_t>(tokens) * k, 2 * i, h);
    up.b = w13_.get();
    up.expert_specialization = spec_.expert_specialization_up;
    up.params.op.a = quantized ? args.x.as<const uint8_t>() : qx_.get<const uint8_t>();
    up.params.op.sfa = quantized ? args.x_scales->as<const float>() : sx_.get<const float>();
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

    sm90::GemmArgs down = routed_args(sm90::GemmEpilogue::CombineF32, static_cast<uint32_t>(tokens) * k, h, i);
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
