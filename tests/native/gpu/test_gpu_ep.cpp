// GPU parity of expert parallelism (docs/EP.md). The CUDA EP layer runs W = 1, 2, 4 and 8 ranks on one
// device over the loopback transport (a context, stream and buffers per rank, a thread per rank) and
// one rank over real NCCL, and must equal the single-GPU layer over all E experts: bitwise for W = 1,
// up to the order in which a token's float32 slot results are added otherwise, and bitwise across
// repeated runs. The CUDA dispatcher's received buffers and combine are bitwise those of the CPU
// backend (the oracle): they move bytes and add float32 in a fixed order.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#if defined(MEGAMOE_TEST_CUDART)
#include <cuda_runtime.h>
#endif

#include "gpu/gpu_support.h"
#include "support/ep_world.h"
#include "support/moe_problem.h"

namespace {

using mmt::HostVec;
using mmt::MoeBatch;
using mmt::MoeProblem;
using mmt::Routing;
using mmt_gpu::DeviceBuffer;

constexpr int64_t kExperts = 16, kTopK = 4, kHidden = 256, kInter = 256, kTokens = 48;

// W ranks on CUDA device 0 over the loopback transport, each with its own context and stream.
class GpuRanks {
 public:
  explicit GpuRanks(int32_t world_size) : contexts_(static_cast<size_t>(world_size)), comms_(contexts_.size()) {
    for (auto& ctx : contexts_) {
      if (megamoe_context_create(MEGAMOE_BACKEND_CUDA, 0, &ctx) != MEGAMOE_SUCCESS) {
        ADD_FAILURE() << "megamoe_context_create: " << mmt::last_error();
        return;
      }
    }
    if (megamoe_ep_comm_create_loopback(contexts_.data(), world_size, comms_.data()) != MEGAMOE_SUCCESS) {
      ADD_FAILURE() << "megamoe_ep_comm_create_loopback: " << mmt::last_error();
    }
#if defined(MEGAMOE_TEST_CUDART)
    streams_.resize(contexts_.size());
    for (auto& s : streams_) {
      if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess) ADD_FAILURE() << "cudaStreamCreate";
    }
#endif
  }
  ~GpuRanks() {
    for (auto comm : comms_) megamoe_ep_comm_destroy(comm);
    for (auto ctx : contexts_) megamoe_context_destroy(ctx);
#if defined(MEGAMOE_TEST_CUDART)
    for (auto s : streams_) cudaStreamDestroy(s);
#endif
  }
  GpuRanks(const GpuRanks&) = delete;
  GpuRanks& operator=(const GpuRanks&) = delete;

  int32_t size() const { return static_cast<int32_t>(comms_.size()); }
  megamoe_context_t context(int32_t r) const { return contexts_[static_cast<size_t>(r)]; }
  megamoe_ep_comm_t comm(int32_t r) const { return comms_[static_cast<size_t>(r)]; }
  void* stream(int32_t r) const {
#if defined(MEGAMOE_TEST_CUDART)
    return streams_[static_cast<size_t>(r)];
#else
    (void)r;
    return nullptr;
#endif
  }
  void sync(int32_t r) const { EXPECT_EQ(megamoe_context_synchronize(context(r), stream(r)), MEGAMOE_SUCCESS); }

  template <typename Body>
  void run(Body body) const {
    mmt::run_ranks(size(), body);
  }

 private:
  std::vector<megamoe_context_t> contexts_;
  std::vector<megamoe_ep_comm_t> comms_;
#if defined(MEGAMOE_TEST_CUDART)
  std::vector<cudaStream_t> streams_;
#endif
};

// One rank's batch on the device (x BF16, routing INT32, weights), and its y.
struct DeviceBatch {
  DeviceBuffer x, idx, w, y;
  megamoe_tensor_t xt, it, wt, yt;
  DeviceBatch(megamoe_context_t ctx, const MoeBatch& b, int64_t H)
      : x(ctx, b.T * H * 2), idx(ctx, b.T * b.k * 4), w(ctx, b.T * b.k * 4), y(ctx, b.T * H * 2) {
    HostVec<int32_t> idx32(b.idx.size());
    for (size_t i = 0; i < b.idx.size(); ++i) idx32[i] = static_cast<int32_t>(b.idx[i]);
    x.upload(b.x);
    idx.upload(idx32);
    w.upload(b.w);
    y.poison();
    xt = x.tensor(MEGAMOE_DTYPE_BF16, {b.T, H});
    it = idx.tensor(MEGAMOE_DTYPE_INT32, {b.T, b.k});
    wt = w.tensor(MEGAMOE_DTYPE_FP32, {b.T, b.k});
    yt = y.tensor(MEGAMOE_DTYPE_BF16, {b.T, H});
  }
  HostVec<uint16_t> output(int64_t count) const { return y.download<uint16_t>(count); }
};

// FP8 weights of experts [first, first + count) of a problem, on the device.
struct DeviceWeights {
  std::unique_ptr<DeviceBuffer> w13, s13, w2, s2;
  megamoe_tensor_t w13t, s13t, w2t, s2t;
  DeviceWeights(megamoe_context_t ctx, const MoeProblem& p, int64_t first, int64_t count) {
    mmt::MoeWeightArgs host(p, mmt::WeightMode::Fp8, false, first, count);
    const int64_t E = count, H = p.cfg.H, I = p.cfg.I;
    w13 = std::make_unique<DeviceBuffer>(ctx, E * 2 * I * H);
    s13 = std::make_unique<DeviceBuffer>(ctx, E * (2 * I / 128) * (H / 128) * 4);
    w2 = std::make_unique<DeviceBuffer>(ctx, E * H * I);
    s2 = std::make_unique<DeviceBuffer>(ctx, E * (H / 128) * (I / 128) * 4);
    w13->upload(host.w13);
    s13->upload(host.s13);
    w2->upload(host.w2);
    s2->upload(host.s2);
    w13t = w13->tensor(MEGAMOE_DTYPE_FP8_E4M3, {E, 2 * I, H});
    s13t = s13->tensor(MEGAMOE_DTYPE_FP32, {E, 2 * I / 128, H / 128});
    w2t = w2->tensor(MEGAMOE_DTYPE_FP8_E4M3, {E, H, I});
    s2t = s2->tensor(MEGAMOE_DTYPE_FP32, {E, H / 128, I / 128});
  }
};

// The single-GPU layer over all E experts: the reference every EP result is compared with.
HostVec<uint16_t> single_layer(megamoe_context_t ctx, const MoeProblem& p, const MoeBatch& b) {
  if (b.T == 0) return {};
  DeviceWeights weights(ctx, p, 0, p.cfg.E);
  megamoe_moe_config_t cfg = mmt::moe_config(p);
  megamoe_moe_layer_t layer = nullptr;
  EXPECT_EQ(megamoe_moe_layer_create(ctx, &cfg, &weights.w13t, &weights.s13t, &weights.w2t, &weights.s2t, nullptr, &layer),
            MEGAMOE_SUCCESS)
      << mmt::last_error();
  DeviceBatch d(ctx, b, p.cfg.H);
  EXPECT_EQ(megamoe_moe_layer_forward(layer, &d.xt, nullptr, &d.it, &d.wt, &d.yt, nullptr, nullptr, nullptr),
            MEGAMOE_SUCCESS)
      << mmt::last_error();
  megamoe_moe_layer_destroy(layer);
  return d.output(b.T * p.cfg.H);
}

megamoe_ep_config_t rank_config(const MoeProblem& p, const std::vector<int32_t>& begin, int32_t r) {
  return mmt::ep_config(p, kTokens, begin[static_cast<size_t>(r)],
                        begin[static_cast<size_t>(r) + 1] - begin[static_cast<size_t>(r)]);
}

// Batches of every rank: T tokens each, none on the ranks in `empty`.
std::vector<MoeBatch> rank_batches(mmt::Rng& rng, const MoeProblem& p, int32_t world_size, Routing routing,
                                   bool some_empty) {
  std::vector<MoeBatch> batches;
  for (int32_t r = 0; r < world_size; ++r) {
    const int64_t T = some_empty && world_size > 1 && r % 2 == 1 ? 0 : kTokens - 8 * r % kTokens;
    batches.push_back(mmt::make_moe_batch(rng, p, T, routing));
  }
  return batches;
}

struct EpCase {
  int32_t world_size;
  Routing routing;
  bool some_empty;
};

void PrintTo(const EpCase& c, std::ostream* os) {
  *os << "W=" << c.world_size << " " << mmt::routing_name(c.routing) << (c.some_empty ? ", some ranks empty" : "");
}

class GpuEpLayer : public ::testing::TestWithParam<EpCase> {};

TEST_P(GpuEpLayer, MatchesTheSingleGpuLayer) {
  MMT_REQUIRE_CUDA();
  const EpCase c = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const MoeProblem p = mmt::make_moe_problem(rng, kExperts, kTopK, kHidden, kInter, kTokens);
  const std::vector<MoeBatch> batches = rank_batches(rng, p, c.world_size, c.routing, c.some_empty);
  const std::vector<int32_t> begin = mmt::split_experts(kExperts, c.world_size);

  mmt_gpu::Contexts reference;
  ASSERT_NE(reference.gpu, nullptr);
  std::vector<HostVec<uint16_t>> want;
  for (const MoeBatch& b : batches) want.push_back(single_layer(reference.gpu, p, b));

  GpuRanks ranks(c.world_size);
  std::vector<HostVec<uint16_t>> first(batches.size()), again(batches.size());
  std::vector<HostVec<int32_t>> counts(batches.size());
  std::vector<std::string> errors(batches.size());
  ranks.run([&](int32_t r) {
    const auto u = static_cast<size_t>(r);
    const megamoe_ep_config_t cfg = rank_config(p, begin, r);
    DeviceWeights weights(ranks.context(r), p, cfg.expert_begin, cfg.num_local_experts);
    megamoe_ep_layer_t layer = nullptr;
    if (megamoe_ep_layer_create(ranks.comm(r), &cfg, &weights.w13t, &weights.s13t, &weights.w2t, &weights.s2t,
                                ranks.stream(r), &layer) != MEGAMOE_SUCCESS) {
      errors[u] = "create: " + mmt::last_error();
      return;
    }
    DeviceBatch d(ranks.context(r), batches[u], p.cfg.H);
    DeviceBuffer count_buf(ranks.context(r), 4 * cfg.num_local_experts);
    HostVec<int32_t> zeros(static_cast<size_t>(cfg.num_local_experts), 0);
    count_buf.upload(zeros);
    const megamoe_tensor_t ct = count_buf.tensor(MEGAMOE_DTYPE_INT32, {cfg.num_local_experts});
    for (int pass = 0; pass < 2; ++pass) {
      d.y.poison();
      if (megamoe_ep_layer_forward(layer, &d.xt, nullptr, &d.it, &d.wt, &d.yt, pass == 0 ? &ct : nullptr,
                                   ranks.stream(r)) != MEGAMOE_SUCCESS) {
        errors[u] = "forward: " + mmt::last_error();
        break;
      }
      ranks.sync(r);
      (pass == 0 ? first : again)[u] = d.output(batches[u].T * p.cfg.H);
    }
    counts[u] = count_buf.download<int32_t>(cfg.num_local_experts);
    megamoe_ep_layer_destroy(layer);
  });

  std::vector<int32_t> want_counts(static_cast<size_t>(kExperts), 0);
  for (const MoeBatch& b : batches) {
    for (int64_t e : b.idx) {
      if (e >= 0 && e < kExperts) ++want_counts[static_cast<size_t>(e)];
    }
  }
  for (int32_t r = 0; r < c.world_size; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r) + " of " + std::to_string(c.world_size));
    const auto u = static_cast<size_t>(r);
    ASSERT_TRUE(errors[u].empty()) << errors[u];
    const int64_t T = batches[u].T;
    EXPECT_TRUE(mmt::ep_close_to_single(first[u].data(), want[u].data(), T, p.cfg.H, c.world_size == 1)) << "vs the single layer";
    EXPECT_TRUE(mmt::bf16_bits_equal(again[u].data(), first[u].data(), T * p.cfg.H)) << "two runs differ";
    mmt::expect_within_f64_bound(p, batches[u], first[u].data());
    const std::vector<int32_t> local(want_counts.begin() + begin[u], want_counts.begin() + begin[u + 1]);
    EXPECT_EQ(std::vector<int32_t>(counts[u].begin(), counts[u].end()), local) << "expert_counts";
  }
}

std::vector<EpCase> ep_cases() {
  std::vector<EpCase> cases;
  for (int32_t w : {1, 2, 4, 8}) {
    for (Routing r : {Routing::Uniform, Routing::Skewed, Routing::OneExpert, Routing::Dropped, Routing::Duplicates,
                      Routing::AllDropped}) {
      cases.push_back({w, r, false});
    }
    cases.push_back({w, Routing::Uniform, true});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Loopback, GpuEpLayer, ::testing::ValuesIn(ep_cases()),
                         [](const ::testing::TestParamInfo<EpCase>& param_info) {
                           std::string name = "W" + std::to_string(param_info.param.world_size) + "_" +
                                              mmt::routing_name(param_info.param.routing) +
                                              (param_info.param.some_empty ? "_some_ranks_empty" : "");
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

// One rank over real NCCL (ncclCommInitAll on device 0): bitwise the single-GPU layer.
TEST(GpuEp, NcclOneRankEqualsTheSingleLayer) {
  MMT_REQUIRE_CUDA();
  const int32_t device = 0;
  void* nccl = nullptr;
  if (megamoe_nccl_comm_init_all(1, &device, &nccl) != MEGAMOE_SUCCESS) {
    GTEST_SKIP() << "NCCL unavailable: " << mmt::last_error();
  }
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const MoeProblem p = mmt::make_moe_problem(rng, kExperts, kTopK, kHidden, kInter, kTokens);
  const MoeBatch b = mmt::make_moe_batch(rng, p, kTokens, Routing::Skewed);
  mmt_gpu::Contexts ctx;
  const HostVec<uint16_t> want = single_layer(ctx.gpu, p, b);

  megamoe_ep_comm_t comm = nullptr;
  MMT_OK(megamoe_ep_comm_create_nccl(ctx.gpu, nccl, &comm));
  int32_t rank = -1, world = 0;
  MMT_OK(megamoe_ep_comm_get_rank(comm, &rank, &world));
  EXPECT_EQ(rank, 0);
  EXPECT_EQ(world, 1);
  const std::vector<int32_t> begin = {0, static_cast<int32_t>(kExperts)};
  megamoe_ep_config_t cfg = rank_config(p, begin, 0);
  cfg.flags |= MEGAMOE_EP_RECORD_TIMINGS;
  DeviceWeights weights(ctx.gpu, p, 0, kExperts);
  megamoe_ep_layer_t layer = nullptr;
  MMT_OK(megamoe_ep_layer_create(comm, &cfg, &weights.w13t, &weights.s13t, &weights.w2t, &weights.s2t, nullptr, &layer));
  DeviceBatch d(ctx.gpu, b, p.cfg.H);
  MMT_OK(megamoe_ep_layer_forward(layer, &d.xt, nullptr, &d.it, &d.wt, &d.yt, nullptr, nullptr));
  const HostVec<uint16_t> got = d.output(b.T * p.cfg.H);
  EXPECT_TRUE(mmt::ep_close_to_single(got.data(), want.data(), b.T, p.cfg.H, true));
  double dispatch = -1, compute = -1, combine = -1;
  MMT_OK(megamoe_ep_layer_get_timings(layer, &dispatch, &compute, &combine));
  EXPECT_GT(dispatch, 0.0);
  EXPECT_GT(compute, 0.0);
  EXPECT_GT(combine, 0.0);

#if defined(MEGAMOE_TEST_CUDART)
  // Captured in a CUDA graph (NCCL send/recv are capturable) and replayed: the same y.
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  d.y.poison();
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  const megamoe_status_t captured = megamoe_ep_layer_forward(layer, &d.xt, nullptr, &d.it, &d.wt, &d.yt, nullptr, s);
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  ASSERT_EQ(captured, MEGAMOE_SUCCESS) << mmt::last_error();
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  const HostVec<uint16_t> replayed = d.output(b.T * p.cfg.H);
  EXPECT_TRUE(mmt::bf16_bits_equal(replayed.data(), got.data(), b.T * p.cfg.H)) << "graph replay differs";
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
#endif

  megamoe_ep_layer_destroy(layer);
  megamoe_ep_comm_destroy(comm);
  MMT_OK(megamoe_nccl_comm_destroy(nccl));
}

// What one rank's dispatcher received and combined, downloaded.
struct DispatchResult {
  HostVec<uint8_t> x;
  HostVec<float> scales, weights, y_partial_input;
  HostVec<int32_t> idx, count, offsets;
  HostVec<uint16_t> y;
};

// Dispatch (plain or expanded) and combine with a partial that is a fixed function of the rank and the
// row, on CPU or CUDA ranks; returns each rank's buffers.
std::vector<DispatchResult> dispatch_and_combine(bool gpu, bool expanded, const MoeProblem& p,
                                                 const std::vector<MoeBatch>& batches, const std::vector<int32_t>& begin) {
  const auto w = static_cast<int32_t>(batches.size());
  std::unique_ptr<GpuRanks> gpu_ranks;
  std::unique_ptr<mmt::EpWorld> cpu_ranks;
  if (gpu) {
    gpu_ranks = std::make_unique<GpuRanks>(w);
  } else {
    cpu_ranks = std::make_unique<mmt::EpWorld>(w);
  }
  std::vector<DispatchResult> out(batches.size());
  const auto body = [&](int32_t r) {
    const auto u = static_cast<size_t>(r);
    megamoe_context_t ctx = gpu ? gpu_ranks->context(r) : cpu_ranks->context(r);
    megamoe_ep_comm_t comm = gpu ? gpu_ranks->comm(r) : cpu_ranks->comm(r);
    void* stream = gpu ? gpu_ranks->stream(r) : nullptr;
    const megamoe_ep_config_t cfg = rank_config(p, begin, r);
    megamoe_ep_dispatcher_t d = nullptr;
    if (megamoe_ep_dispatcher_create(comm, &cfg, stream, &d) != MEGAMOE_SUCCESS) {
      ADD_FAILURE() << mmt::last_error();
      return;
    }
    int64_t rows = 0, expanded_rows = 0;
    EXPECT_EQ(megamoe_ep_dispatcher_get_sizes(d, &rows, &expanded_rows), MEGAMOE_SUCCESS);
    const int64_t R = expanded ? expanded_rows : rows, H = p.cfg.H, k = p.cfg.k;
    const MoeBatch& b = batches[u];
    // Memory of the rank's backend: device buffers on CUDA, host vectors on the CPU.
    const auto buffer = [&](int64_t bytes) { return std::make_unique<DeviceBuffer>(ctx, bytes); };
    auto x = buffer(b.T * H * 2), idx = buffer(b.T * k * 4), wt = buffer(b.T * k * 4), y = buffer(b.T * H * 2);
    auto rx = buffer(R * H), rs = buffer(R * (H / 128) * 4), ridx = buffer(rows * k * 4), rw = buffer(rows * k * 4),
         rn = buffer(4), roff = buffer(4 * (cfg.num_local_experts + 1)), part = buffer(R * H * 4);
    HostVec<int32_t> idx32(b.idx.size());
    for (size_t i = 0; i < b.idx.size(); ++i) idx32[i] = static_cast<int32_t>(b.idx[i]);
    x->upload(b.x), idx->upload(idx32), wt->upload(b.w);
    for (auto* buf : {rx.get(), rs.get(), ridx.get(), rw.get(), roff.get(), y.get()}) buf->poison();
    const auto dev = [&](const DeviceBuffer& buf, megamoe_dtype_t dt, std::vector<int64_t> shape) {
      megamoe_tensor_t t = buf.tensor(dt, shape);
      if (!gpu) t.device_type = MEGAMOE_DEVICE_CPU, t.device_id = 0;
      return t;
    };
    const megamoe_tensor_t xt = dev(*x, MEGAMOE_DTYPE_BF16, {b.T, H}), it = dev(*idx, MEGAMOE_DTYPE_INT32, {b.T, k}),
                           wtt = dev(*wt, MEGAMOE_DTYPE_FP32, {b.T, k}), yt = dev(*y, MEGAMOE_DTYPE_BF16, {b.T, H});
    const megamoe_tensor_t rxt = dev(*rx, MEGAMOE_DTYPE_FP8_E4M3, {R, H}), rst = dev(*rs, MEGAMOE_DTYPE_FP32, {R, H / 128});
    megamoe_status_t st;
    if (expanded) {
      const megamoe_tensor_t rot = dev(*roff, MEGAMOE_DTYPE_INT32, {cfg.num_local_experts + 1});
      st = megamoe_ep_dispatch_expanded(d, &xt, nullptr, &it, &wtt, &rxt, &rst, &rot, stream);
    } else {
      const megamoe_tensor_t rit = dev(*ridx, MEGAMOE_DTYPE_INT32, {rows, k}), rwt = dev(*rw, MEGAMOE_DTYPE_FP32, {rows, k}),
                             rnt = dev(*rn, MEGAMOE_DTYPE_INT32, {1});
      st = megamoe_ep_dispatch(d, &xt, nullptr, &it, &wtt, &rxt, &rst, &rit, &rwt, &rnt, stream);
    }
    EXPECT_EQ(st, MEGAMOE_SUCCESS) << mmt::last_error();
    // The caller's compute: a value that depends on the rank and the row only.
    HostVec<float> partial(static_cast<size_t>(R * H));
    for (int64_t i = 0; i < R * H; ++i) partial[static_cast<size_t>(i)] = std::sin(0.37f * static_cast<float>(i % 9973) + static_cast<float>(r));
    part->upload(partial);
    const megamoe_tensor_t pt = dev(*part, MEGAMOE_DTYPE_FP32, {R, H});
    EXPECT_EQ(megamoe_ep_combine(d, &pt, &yt, stream), MEGAMOE_SUCCESS) << mmt::last_error();
    if (gpu) gpu_ranks->sync(r);
    DispatchResult& res = out[u];
    res.offsets = roff->download<int32_t>(cfg.num_local_experts + 1);
    res.count = rn->download<int32_t>(1);
    const int64_t valid = expanded ? res.offsets.back() : res.count[0];
    res.x = rx->download<uint8_t>(valid * H);
    res.scales = rs->download<float>(valid * (H / 128));
    if (!expanded) {
      res.idx = ridx->download<int32_t>(valid * k);
      res.weights = rw->download<float>(valid * k);
    }
    res.y = y->download<uint16_t>(b.T * H);
    megamoe_ep_dispatcher_destroy(d);
  };
  if (gpu) {
    gpu_ranks->run(body);
  } else {
    cpu_ranks->run(body);
  }
  return out;
}

class GpuEpDispatch : public ::testing::TestWithParam<bool> {};

TEST_P(GpuEpDispatch, BitwiseTheCpuBackend) {
  MMT_REQUIRE_CUDA();
  const bool expanded = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const MoeProblem p = mmt::make_moe_problem(rng, kExperts, kTopK, kHidden, kInter, kTokens);
  const int32_t w = 4;
  const std::vector<MoeBatch> batches = rank_batches(rng, p, w, Routing::Duplicates, true);
  const std::vector<int32_t> begin = mmt::split_experts(kExperts, w);
  const std::vector<DispatchResult> cpu = dispatch_and_combine(false, expanded, p, batches, begin);
  const std::vector<DispatchResult> gpu = dispatch_and_combine(true, expanded, p, batches, begin);
  for (int32_t r = 0; r < w; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    const auto u = static_cast<size_t>(r);
    if (expanded) {
      EXPECT_EQ(gpu[u].offsets, cpu[u].offsets) << "expert offsets";
    } else {
      EXPECT_EQ(gpu[u].count, cpu[u].count) << "received tokens";
      EXPECT_EQ(gpu[u].idx, cpu[u].idx) << "local top-k indices";
      EXPECT_EQ(0, std::memcmp(gpu[u].weights.data(), cpu[u].weights.data(), cpu[u].weights.size() * 4)) << "weights";
    }
    EXPECT_EQ(gpu[u].x, cpu[u].x) << "received FP8 rows";
    EXPECT_EQ(0, std::memcmp(gpu[u].scales.data(), cpu[u].scales.data(), cpu[u].scales.size() * 4)) << "scales";
    EXPECT_TRUE(mmt::bf16_bits_equal(gpu[u].y.data(), cpu[u].y.data(), static_cast<int64_t>(cpu[u].y.size())))
        << "combined y";
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, GpuEpDispatch, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& param_info) { return param_info.param ? "Expanded" : "Plain"; });

}  // namespace
