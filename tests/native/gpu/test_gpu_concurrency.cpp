// The thread-safety contract of docs/API.md ("Threads and streams") on the CUDA backend: threads with
// their own contexts and layers (each on its own stream where the CUDA runtime is linked), one layer
// shared by threads (the library serializes its forwards), and per-thread last-error messages. Every
// thread's output must be bitwise the output of the same forward run alone.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#if defined(MEGAMOE_TEST_CUDART)
#include <cuda_runtime.h>
#endif

#include "gpu/gpu_support.h"

namespace {

using mmt::HostVec;
using mmt_gpu::DeviceBuffer;
using mmt_gpu::to_device;

constexpr int kThreads = 4;
constexpr int64_t kE = 8, kK = 4, kH = 256, kI = 256, kT = 96;

// FP8 weights, a batch, and one layer plus its input and output buffers on a context.
struct Inputs {
  HostVec<uint8_t> w13, w2;
  HostVec<float> s13, s2, topk_w;
  HostVec<uint16_t> x;
  HostVec<int32_t> idx;
  explicit Inputs(mmt::Rng& rng) {
    w13 = mmt::random_fp8(rng, kE * 2 * kI * kH);
    s13 = mmt::random_scales(rng, kE * (2 * kI / 128) * (kH / 128), -9, -6);
    w2 = mmt::random_fp8(rng, kE * kH * kI);
    s2 = mmt::random_scales(rng, kE * (kH / 128) * (kI / 128), -9, -6);
    x = mmt::to_bf16(mmt::random_normal(rng, kT * kH, 1.0));
    idx.resize(static_cast<size_t>(kT * kK));
    topk_w.resize(idx.size());
    for (size_t i = 0; i < idx.size(); ++i) {
      idx[i] = static_cast<int32_t>(rng.range(-1, kE - 1));
      topk_w[i] = static_cast<float>(rng.uniform(0.1, 1.0));
    }
  }
};

class LayerOnDevice {
 public:
  LayerOnDevice(megamoe_context_t ctx, const Inputs& in) : ctx_(ctx) {
    auto d13 = to_device(ctx, in.w13), ds13 = to_device(ctx, in.s13), d2 = to_device(ctx, in.w2),
         ds2 = to_device(ctx, in.s2);
    megamoe_moe_config_t c{};
    c.struct_size = sizeof c;
    c.num_experts = static_cast<int32_t>(kE);
    c.top_k = static_cast<int32_t>(kK);
    c.hidden = kH;
    c.intermediate = kI;
    c.max_tokens = kT;
    c.activation_alpha = 1.0f;
    c.routed_scaling_factor = 1.0f;
    const auto t13 = d13->tensor(MEGAMOE_DTYPE_FP8_E4M3, {kE, 2 * kI, kH});
    const auto ts13 = ds13->tensor(MEGAMOE_DTYPE_FP32, {kE, 2 * kI / 128, kH / 128});
    const auto t2 = d2->tensor(MEGAMOE_DTYPE_FP8_E4M3, {kE, kH, kI});
    const auto ts2 = ds2->tensor(MEGAMOE_DTYPE_FP32, {kE, kH / 128, kI / 128});
    status = megamoe_moe_layer_create(ctx, &c, &t13, &ts13, &t2, &ts2, nullptr, &layer);
  }
  ~LayerOnDevice() { megamoe_moe_layer_destroy(layer); }
  LayerOnDevice(const LayerOnDevice&) = delete;
  LayerOnDevice& operator=(const LayerOnDevice&) = delete;

  // One forward of the batch into a fresh, poisoned output on `stream`; "" and the output, or what
  // went wrong.
  std::string forward(const Inputs& in, void* stream, HostVec<uint16_t>& y) const {
    auto x = to_device(ctx_, in.x), idx = to_device(ctx_, in.idx), w = to_device(ctx_, in.topk_w);
    DeviceBuffer out(ctx_, kT * kH * 2);
    out.poison();
    const auto xt = x->tensor(MEGAMOE_DTYPE_BF16, {kT, kH});
    const auto it = idx->tensor(MEGAMOE_DTYPE_INT32, {kT, kK});
    const auto wt = w->tensor(MEGAMOE_DTYPE_FP32, {kT, kK});
    const auto yt = out.tensor(MEGAMOE_DTYPE_BF16, {kT, kH});
    if (megamoe_moe_layer_forward(layer, &xt, nullptr, &it, &wt, &yt, nullptr, nullptr, stream) != MEGAMOE_SUCCESS ||
        megamoe_context_synchronize(ctx_, stream) != MEGAMOE_SUCCESS) {
      return mmt::last_error();
    }
    y = out.download<uint16_t>(kT * kH);
    return "";
  }

  megamoe_moe_layer_t layer = nullptr;
  megamoe_status_t status = MEGAMOE_SUCCESS;

 private:
  megamoe_context_t ctx_;
};


std::string compare(const HostVec<uint16_t>& got, const HostVec<uint16_t>& want) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (got[i] != want[i]) return "output " + std::to_string(i) + " differs from the run alone";
  }
  return "";
}

class GpuConcurrency : public mmt_gpu::GpuTest {};

TEST_F(GpuConcurrency, ThreadsWithTheirOwnContextsAndStreams) {
  MMT_SEED_TRACE(seed_);
  mmt::Rng rng(seed_);
  const Inputs in(rng);
  HostVec<uint16_t> alone;
  {
    LayerOnDevice layer(c().gpu, in);
    ASSERT_EQ(layer.status, MEGAMOE_SUCCESS) << megamoe_last_error_message();
    ASSERT_EQ(layer.forward(in, nullptr, alone), "");
  }
  const auto verdicts = mmt::on_threads(kThreads, [&](int) -> std::string {
    megamoe_context_t ctx = nullptr;
    if (megamoe_context_create(MEGAMOE_BACKEND_CUDA, 0, &ctx) != MEGAMOE_SUCCESS) return mmt::last_error();
    std::string verdict;
    {
      void* stream = nullptr;
#if defined(MEGAMOE_TEST_CUDART)
      cudaStream_t s = nullptr;
      if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess) return "cudaStreamCreate failed";
      stream = s;
#endif
      LayerOnDevice layer(ctx, in);
      HostVec<uint16_t> y;
      verdict = layer.status != MEGAMOE_SUCCESS ? mmt::last_error() : layer.forward(in, stream, y);
      if (verdict.empty()) verdict = compare(y, alone);
#if defined(MEGAMOE_TEST_CUDART)
      cudaStreamDestroy(s);
#endif
    }
    megamoe_context_destroy(ctx);
    return verdict;
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(verdicts[static_cast<size_t>(t)], "") << "thread " << t;
}

// One layer, its forwards from several threads at once: the library runs them one at a time (the
// layer owns its workspace) and each thread gets its own output.
TEST_F(GpuConcurrency, OneLayerSharedByThreads) {
  MMT_SEED_TRACE(seed_);
  mmt::Rng rng(seed_);
  const Inputs in(rng);
  LayerOnDevice layer(c().gpu, in);
  ASSERT_EQ(layer.status, MEGAMOE_SUCCESS) << megamoe_last_error_message();
  HostVec<uint16_t> alone;
  ASSERT_EQ(layer.forward(in, nullptr, alone), "");
  const auto verdicts = mmt::on_threads(kThreads, [&](int) -> std::string {
    HostVec<uint16_t> y;
    for (int repeat = 0; repeat < 3; ++repeat) {
      std::string verdict = layer.forward(in, nullptr, y);
      if (verdict.empty()) verdict = compare(y, alone);
      if (!verdict.empty()) return verdict;
    }
    return "";
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(verdicts[static_cast<size_t>(t)], "") << "thread " << t;
}

// Each thread's failed CUDA call leaves its own message, untouched by the other threads' failures.
TEST_F(GpuConcurrency, LastErrorStaysPerThread) {
  const auto verdicts = mmt::on_threads(kThreads, [&](int t) -> std::string {
    megamoe_routed_plan_t plan = nullptr;
    const int32_t top_k = 100 + t;  // out of range, different per thread
    for (int repeat = 0; repeat < 50; ++repeat) {
      if (megamoe_routed_plan_create(c().gpu, 16, top_k, 4, 128, 128, 0, &plan) != MEGAMOE_ERROR_INVALID_ARGUMENT) {
        return "an invalid top_k was accepted";
      }
      const std::string message = megamoe_last_error_message();
      if (message.find(std::to_string(top_k)) == std::string::npos) return "foreign message: " + message;
    }
    return "";
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(verdicts[static_cast<size_t>(t)], "") << "thread " << t;
}

}  // namespace
