// GPU parity of the routed grouped GEMM (megamoe_gemm_routed, docs/NUMERICS.md section 3, routed)
// against the CPU backend, with and without expert specialization: identical FP8 inputs, fresh
// random data each run, outputs poisoned before every launch, every output within the BF16 bound of
// gpu/gpu_support.h and dropped slots exactly +0.0. Routings: uniform, skewed (70% of the experts
// get 1-32 tokens), one expert, sparse (-1 slots), duplicate experts per token, out-of-range
// indices (dropped on the GPU), k = 16, INT64 indices, the expanded (grouped contiguous) format as
// topk_idx [M, 1], T = 0, a device token count, and a CUDA graph captured once and replayed with
// other routings and token counts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#if defined(MEGAMOE_TEST_CUDART)
#include <cuda_runtime.h>
#endif

#include "gpu/gpu_support.h"

namespace {

using mmt::HostVec;
using mmt_gpu::Contexts;
using mmt_gpu::DeviceBuffer;
using mmt_gpu::to_device;

// Expanded: the grouped-contiguous format (rows already sorted by expert, each expert padded to 128
// rows with -1) passed as topk_idx [M, 1]: the same API family takes it, expert specialization too.
enum class Routing { Uniform, Skewed, OneExpert, Sparse, Duplicates, OutOfRange, Expanded };

const char* routing_name(Routing r) {
  switch (r) {
    case Routing::Uniform: return "uniform";
    case Routing::Skewed: return "skewed";
    case Routing::OneExpert: return "one-expert";
    case Routing::Sparse: return "sparse";
    case Routing::Duplicates: return "duplicates";
    case Routing::OutOfRange: return "out-of-range";
    case Routing::Expanded: return "expanded (contiguous m_indices)";
  }
  return "?";
}

// topk_idx [T, k]; skewed: 70% of the experts get 1-32 tokens, the others share the rest.
std::vector<int64_t> make_routing(mmt::Rng& rng, Routing r, int64_t T, int64_t k, int64_t E) {
  std::vector<int64_t> idx(static_cast<std::size_t>(T * k));
  std::vector<int64_t> small_budget(static_cast<std::size_t>(E), 0);
  const int64_t small = E * 7 / 10;
  for (int64_t e = 0; e < small; ++e) small_budget[static_cast<std::size_t>(e)] = rng.range(1, 32);
  const int64_t star = rng.range(0, E - 1);
  if (r == Routing::Expanded) {
    int64_t row = 0;
    for (int64_t e = 0; e < E && row < T; ++e) {
      const int64_t count = std::min<int64_t>(T - row, rng.range(0, 200));
      for (int64_t i = 0; i < count; ++i) idx[static_cast<std::size_t>(row++)] = e;
      while (row % 128 != 0 && row < T) idx[static_cast<std::size_t>(row++)] = -1;
    }
    while (row < T) idx[static_cast<std::size_t>(row++)] = -1;
    return idx;
  }
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      int64_t& e = idx[static_cast<std::size_t>(t * k + j)];
      switch (r) {
        case Routing::Uniform: e = rng.range(0, E - 1); break;
        case Routing::Skewed: {
          const int64_t c = rng.range(0, E - 1);
          if (c < small && small_budget[static_cast<std::size_t>(c)] > 0) {
            --small_budget[static_cast<std::size_t>(c)];
            e = c;
          } else {
            e = small + rng.range(0, E - small - 1);
          }
          break;
        }
        case Routing::OneExpert: e = star; break;
        case Routing::Sparse: e = rng.chance(0.35) ? -1 : rng.range(0, E - 1); break;
        case Routing::Duplicates:
          e = j > 0 && rng.chance(0.5) ? idx[static_cast<std::size_t>(t * k + j - 1)] : rng.range(0, E - 1);
          break;
        case Routing::OutOfRange: e = rng.chance(0.2) ? (rng.chance(0.5) ? E + rng.range(0, 5) : -2 - rng.range(0, 5))
                                                      : rng.range(0, E - 1);
          break;
        case Routing::Expanded: break;  // built above
      }
    }
  }
  return idx;
}

struct Problem {
  int64_t T = 0, k = 0, E = 0, n = 0, kdim = 0;
  HostVec<uint8_t> a, b;
  HostVec<float> sa, sb, w;
  std::vector<int64_t> idx;
};

Problem make_problem(mmt::Rng& rng, Routing r, int64_t T, int64_t k, int64_t E, int64_t n, int64_t kdim) {
  Problem p;
  p.T = T, p.k = k, p.E = E, p.n = n, p.kdim = kdim;
  p.a = mmt::random_fp8(rng, T * kdim);
  p.sa = mmt::random_scales(rng, T * (kdim / 128));
  p.b = mmt::random_fp8(rng, E * n * kdim);
  p.sb = mmt::random_scales(rng, E * (n / 128) * (kdim / 128));
  p.w.resize(static_cast<std::size_t>(T * k));
  for (auto& v : p.w) v = static_cast<float>(rng.uniform(0.05, 1.5));
  p.idx = make_routing(rng, r, T, k, E);
  return p;
}

// magnitude of each output d[t, j, c] (docs/NUMERICS.md section 3 GPU bound), times |w|.
std::vector<double> magnitudes(const Problem& p, bool weighted) {
  const int64_t kb = p.kdim / 128;
  std::vector<double> mag(static_cast<std::size_t>(p.T * p.k * p.n), 0.0);
  for (int64_t t = 0; t < p.T; ++t) {
    for (int64_t j = 0; j < p.k; ++j) {
      const int64_t e = p.idx[static_cast<std::size_t>(t * p.k + j)];
      if (e < 0 || e >= p.E) continue;
      const double w = weighted ? std::fabs(p.w[static_cast<std::size_t>(t * p.k + j)]) : 1.0;
      for (int64_t c = 0; c < p.n; ++c) {
        double total = 0.0;
        for (int64_t blk = 0; blk < kb; ++blk) {
          double s = 0.0;
          for (int64_t x = blk * 128; x < blk * 128 + 128; ++x) {
            s += std::fabs(static_cast<double>(mmt::fp8_decode(p.a[static_cast<std::size_t>(t * p.kdim + x)])) *
                           mmt::fp8_decode(p.b[static_cast<std::size_t>((e * p.n + c) * p.kdim + x)]));
          }
          total += std::fabs(static_cast<double>(p.sa[static_cast<std::size_t>(t * kb + blk)]) *
                             p.sb[static_cast<std::size_t>((e * (p.n / 128) + c / 128) * kb + blk)]) *
                   s;
        }
        mag[static_cast<std::size_t>((t * p.k + j) * p.n + c)] = total * w;
      }
    }
  }
  return mag;
}

struct Plan {
  Plan(megamoe_context_t ctx, int64_t max_tokens, const Problem& p, uint32_t flags) {
    status = megamoe_routed_plan_create(ctx, max_tokens, static_cast<int32_t>(p.k), static_cast<int32_t>(p.E), p.n, p.kdim,
                                        flags, &plan);
  }
  ~Plan() { megamoe_routed_plan_destroy(plan); }
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  megamoe_routed_plan_t plan = nullptr;
  megamoe_status_t status = MEGAMOE_SUCCESS;
};

struct Options {
  bool idx64 = false;
  bool weighted = true;
  uint32_t flags = MEGAMOE_PLAN_DEFAULT;
};

// CPU reference of the routed GEMM; out-of-range indices (rejected by the CPU backend) become -1,
// which is what the CUDA backend does with them.
HostVec<uint16_t> cpu_reference(Contexts& c, const Problem& p, bool weighted) {
  std::vector<int64_t> idx = p.idx;
  for (auto& e : idx) e = e >= 0 && e < p.E ? e : -1;
  HostVec<int32_t> idx32(idx.begin(), idx.end());
  Plan plan(c.cpu, std::max<int64_t>(p.T, 1), p, 0);
  EXPECT_EQ(plan.status, MEGAMOE_SUCCESS) << megamoe_last_error_message();
  HostVec<uint16_t> ref(static_cast<std::size_t>(p.T * p.k * p.n));
  const auto at = mmt::make_tensor(p.a.data(), MEGAMOE_DTYPE_FP8_E4M3, {p.T, p.kdim});
  const auto st = mmt::make_tensor(p.sa.data(), MEGAMOE_DTYPE_FP32, {p.T, p.kdim / 128});
  const auto bt = mmt::make_tensor(p.b.data(), MEGAMOE_DTYPE_FP8_E4M3, {p.E, p.n, p.kdim});
  const auto sbt = mmt::make_tensor(p.sb.data(), MEGAMOE_DTYPE_FP32, {p.E, p.n / 128, p.kdim / 128});
  const auto it = mmt::make_tensor(idx32.data(), MEGAMOE_DTYPE_INT32, {p.T, p.k});
  const auto wt = mmt::make_tensor(p.w.data(), MEGAMOE_DTYPE_FP32, {p.T, p.k});
  const auto dt = mmt::make_tensor(ref.data(), MEGAMOE_DTYPE_BF16, {p.T, p.k, p.n});
  EXPECT_EQ(megamoe_gemm_routed(plan.plan, &at, &st, &bt, &sbt, &it, weighted ? &wt : nullptr, nullptr, &dt, nullptr),
            MEGAMOE_SUCCESS)
      << megamoe_last_error_message();
  return ref;
}

// The problem's operands on the device.
struct Bound {
  Bound(Contexts& c, const Problem& p, bool idx64) {
    HostVec<int32_t> idx32(p.idx.begin(), p.idx.end());
    HostVec<int64_t> i64(p.idx.begin(), p.idx.end());
    a = to_device(c.gpu, p.a);
    sa = to_device(c.gpu, p.sa);
    b = to_device(c.gpu, p.b);
    sb = to_device(c.gpu, p.sb);
    w = to_device(c.gpu, p.w);
    idx = idx64 ? to_device(c.gpu, i64) : to_device(c.gpu, idx32);
    d = std::make_unique<DeviceBuffer>(c.gpu, p.T * p.k * p.n * 2);
    at = a->tensor(MEGAMOE_DTYPE_FP8_E4M3, {p.T, p.kdim});
    st = sa->tensor(MEGAMOE_DTYPE_FP32, {p.T, p.kdim / 128});
    bt = b->tensor(MEGAMOE_DTYPE_FP8_E4M3, {p.E, p.n, p.kdim});
    sbt = sb->tensor(MEGAMOE_DTYPE_FP32, {p.E, p.n / 128, p.kdim / 128});
    it = idx->tensor(idx64 ? MEGAMOE_DTYPE_INT64 : MEGAMOE_DTYPE_INT32, {p.T, p.k});
    wt = w->tensor(MEGAMOE_DTYPE_FP32, {p.T, p.k});
    dt = d->tensor(MEGAMOE_DTYPE_BF16, {p.T, p.k, p.n});
  }
  std::unique_ptr<DeviceBuffer> a, sa, b, sb, w, idx, d;
  megamoe_tensor_t at, st, bt, sbt, it, wt, dt;
};

// Compares the first `valid` tokens' rows with the reference (dropped slots: exactly +0.0) and
// checks that the rows of later tokens still hold the poison.
void expect_parity(const Problem& p, const HostVec<uint16_t>& got, const HostVec<uint16_t>& ref,
                   const std::vector<double>& mag, int64_t valid) {
  const int64_t rows = valid * p.k, n = p.n;
  const auto rep = mmt_gpu::compare_bf16(got.data(), ref.data(), mag.data(), rows * n, n);
  EXPECT_EQ(rep.violations, 0) << rep.violations << " of " << rep.count << " outputs beyond the bound:\n" << rep.first;
  EXPECT_LE(rep.beyond_ulp, rep.count / 20 + 2) << "too many outputs beyond 1 BF16 ulp";
  int64_t dropped_nonzero = 0, untouched_written = 0;
  for (int64_t s = 0; s < rows; ++s) {
    const int64_t e = p.idx[static_cast<std::size_t>(s)];
    if (e >= 0 && e < p.E) continue;
    for (int64_t c = 0; c < n; ++c) dropped_nonzero += got[static_cast<std::size_t>(s * n + c)] != 0;
  }
  for (int64_t s = rows; s < p.T * p.k; ++s) {
    untouched_written += !mmt::all_bytes_are(got.data() + s * n, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(dropped_nonzero, 0) << "dropped slots must be +0.0";
  EXPECT_EQ(untouched_written, 0) << "rows of tokens past num_tokens were written";
  std::printf("    %lld outputs: %lld bitwise equal, %lld beyond 1 ulp, %lld violations\n",
              static_cast<long long>(rep.count), static_cast<long long>(rep.exact),
              static_cast<long long>(rep.beyond_ulp), static_cast<long long>(rep.violations));
}

class GpuRouted : public mmt_gpu::GpuTest {
 protected:
  void run(mmt::Rng& rng, Routing r, int64_t T, int64_t k, int64_t E, int64_t n, int64_t kdim, const Options& o) {
    SCOPED_TRACE(testing::Message() << "routed " << routing_name(r) << " T=" << T << " k=" << k << " E=" << E
                                    << " N=" << n << " K=" << kdim << (o.idx64 ? " int64" : " int32")
                                    << (o.weighted ? " weighted" : "")
                                    << (o.flags & MEGAMOE_PLAN_EXPERT_SPECIALIZATION ? " ES" : ""));
    std::printf("  routed %s T=%lld k=%lld E=%lld N=%lld K=%lld%s%s\n", routing_name(r), static_cast<long long>(T),
                static_cast<long long>(k), static_cast<long long>(E), static_cast<long long>(n),
                static_cast<long long>(kdim), o.weighted ? " weighted" : "",
                o.flags & MEGAMOE_PLAN_EXPERT_SPECIALIZATION ? " ES" : "");
    const Problem p = make_problem(rng, r, T, k, E, n, kdim);
    const HostVec<uint16_t> ref = cpu_reference(c(), p, o.weighted);
    const std::vector<double> mag = magnitudes(p, o.weighted);
    Bound g(c(), p, o.idx64);
    Plan plan(c().gpu, T, p, o.flags);
    ASSERT_EQ(plan.status, MEGAMOE_SUCCESS) << megamoe_last_error_message();
    g.d->poison();
    MMT_OK(megamoe_gemm_routed(plan.plan, &g.at, &g.st, &g.bt, &g.sbt, &g.it, o.weighted ? &g.wt : nullptr, nullptr,
                               &g.dt, nullptr));
    expect_parity(p, g.d->download<uint16_t>(T * k * n), ref, mag, T);
  }
};

TEST_F(GpuRouted, Routings) {
  MMT_SEED_TRACE(seed_);
  mmt::Rng rng(seed_);
  for (const uint32_t flags : {MEGAMOE_PLAN_DEFAULT, MEGAMOE_PLAN_EXPERT_SPECIALIZATION}) {
    run(rng, Routing::Uniform, 200, 4, 8, 256, 512, {false, true, flags});
    run(rng, Routing::Skewed, 300, 8, 64, 256, 256, {true, true, flags});
    run(rng, Routing::OneExpert, 150, 2, 16, 512, 384, {false, false, flags});
    run(rng, Routing::Sparse, 97, 6, 12, 128, 1024, {false, true, flags});
    run(rng, Routing::Duplicates, 64, 4, 4, 384, 256, {true, true, flags});
    run(rng, Routing::OutOfRange, 50, 4, 8, 256, 256, {false, true, flags});
    run(rng, Routing::Uniform, 33, 16, 32, 256, 128, {false, true, flags});  // k = 16
    run(rng, Routing::Uniform, 1, 8, 1024, 128, 128, {false, true, flags});  // one token, 1024 experts
    run(rng, Routing::Expanded, 1024, 1, 8, 256, 512, {false, false, flags});
  }
}

TEST_F(GpuRouted, ZeroTokensWritesNothing) {
  mmt::Rng rng(seed_);
  const Problem p = make_problem(rng, Routing::Uniform, 0, 4, 8, 256, 256);
  Bound g(c(), p, false);
  Plan plan(c().gpu, 16, p, 0);
  ASSERT_EQ(plan.status, MEGAMOE_SUCCESS) << megamoe_last_error_message();
  MMT_OK(megamoe_gemm_routed(plan.plan, &g.at, &g.st, &g.bt, &g.sbt, &g.it, &g.wt, nullptr, &g.dt, nullptr));
  MMT_OK(megamoe_context_synchronize(c().gpu, nullptr));
}

// The token count read on the device: later tokens' rows are neither read nor written.
TEST_F(GpuRouted, DeviceTokenCount) {
  MMT_SEED_TRACE(seed_);
  mmt::Rng rng(seed_);
  const int64_t T = 120, k = 4, E = 8, n = 256, kdim = 256;
  Problem p = make_problem(rng, Routing::Uniform, T, k, E, n, kdim);
  for (const int32_t valid : {0, 1, 77, 120}) {
    SCOPED_TRACE(testing::Message() << "num_tokens = " << valid);
    Problem head = p;
    head.T = valid;
    head.a.resize(static_cast<std::size_t>(valid * kdim));
    head.sa.resize(static_cast<std::size_t>(valid * (kdim / 128)));
    head.w.resize(static_cast<std::size_t>(valid * k));
    head.idx.resize(static_cast<std::size_t>(valid * k));
    const HostVec<uint16_t> ref = valid > 0 ? cpu_reference(c(), head, true) : HostVec<uint16_t>{};
    const std::vector<double> mag = magnitudes(head, true);
    Bound g(c(), p, false);
    HostVec<int32_t> count{valid};
    auto count_d = to_device(c().gpu, count);
    const auto ct = count_d->tensor(MEGAMOE_DTYPE_INT32, {1});
    Plan plan(c().gpu, T, p, 0);
    ASSERT_EQ(plan.status, MEGAMOE_SUCCESS) << megamoe_last_error_message();
    g.d->poison();
    MMT_OK(megamoe_gemm_routed(plan.plan, &g.at, &g.st, &g.bt, &g.sbt, &g.it, &g.wt, &ct, &g.dt, nullptr));
    expect_parity(p, g.d->download<uint16_t>(T * k * n), ref, mag, valid);
  }
}

// Captured once into a CUDA graph with the token count on the device, then replayed after the
// routing, the inputs and the count change in place: each replay matches the CPU.
TEST_F(GpuRouted, GraphCaptureAndReplay) {
#if !defined(MEGAMOE_TEST_CUDART)
  GTEST_SKIP() << "built without the CUDA toolkit: the graph test drives the CUDA runtime directly";
#else
  MMT_SEED_TRACE(seed_);
  mmt::Rng rng(seed_);
  const int64_t T = 256, k = 8, E = 32, n = 256, kdim = 512;
  Problem p = make_problem(rng, Routing::Uniform, T, k, E, n, kdim);
  Bound g(c(), p, false);
  HostVec<int32_t> count{static_cast<int32_t>(T)};
  auto count_d = to_device(c().gpu, count);
  const auto ct = count_d->tensor(MEGAMOE_DTYPE_INT32, {1});
  for (const uint32_t flags : {MEGAMOE_PLAN_DEFAULT, MEGAMOE_PLAN_EXPERT_SPECIALIZATION}) {
    Plan plan(c().gpu, T, p, flags);
    ASSERT_EQ(plan.status, MEGAMOE_SUCCESS) << megamoe_last_error_message();
    cudaStream_t stream = nullptr;
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
    // Warm-up outside the capture (first-use set-up), then capture.
    MMT_OK(megamoe_gemm_routed(plan.plan, &g.at, &g.st, &g.bt, &g.sbt, &g.it, &g.wt, &ct, &g.dt, stream));
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    const megamoe_status_t st =
        megamoe_gemm_routed(plan.plan, &g.at, &g.st, &g.bt, &g.sbt, &g.it, &g.wt, &ct, &g.dt, stream);
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    ASSERT_EQ(st, MEGAMOE_SUCCESS) << megamoe_last_error_message();
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    const Routing routings[] = {Routing::Uniform, Routing::Skewed, Routing::Sparse, Routing::OneExpert};
    const int32_t counts[] = {256, 100, 1, 256};
    for (int replay = 0; replay < 4; ++replay) {
      SCOPED_TRACE(testing::Message() << "replay " << replay << " " << routing_name(routings[replay]) << " T="
                                      << counts[replay]);
      Problem q = make_problem(rng, routings[replay], T, k, E, n, kdim);
      q.b = p.b, q.sb = p.sb;  // weights stay where the graph points
      g.a->upload(q.a);
      g.sa->upload(q.sa);
      g.w->upload(q.w);
      HostVec<int32_t> idx32(q.idx.begin(), q.idx.end());
      g.idx->upload(idx32);
      count_d->upload(HostVec<int32_t>{counts[replay]});
      g.d->poison();
      ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
      Problem head = q;
      head.T = counts[replay];
      head.a.resize(static_cast<std::size_t>(head.T * kdim));
      head.sa.resize(static_cast<std::size_t>(head.T * (kdim / 128)));
      head.w.resize(static_cast<std::size_t>(head.T * k));
      head.idx.resize(static_cast<std::size_t>(head.T * k));
      expect_parity(q, g.d->download<uint16_t>(T * k * n), cpu_reference(c(), head, true), magnitudes(head, true),
                    head.T);
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
  }
#endif
}

}  // namespace
