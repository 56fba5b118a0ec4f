// Benchmark cases of the expert-parallel layer (docs/EP.md), included by megamoe_bench.cu after Bench:
//   ep/...  W ranks on this one GPU over the loopback transport (W = 1: over NCCL when it loads), each
//           with 32 DeepSeek-V3 experts (H 7168, I 2048, top-8 over 32 W experts), its own context,
//           stream and thread, T tokens per rank. Reported per rank from megamoe_ep_layer_get_timings:
//           dispatch (quantize, pack, exchange, unpack), compute (the local fused layer), combine
//           (return, exchange, combine), medians over the runs; median_us is the slowest rank's total.
//           On one GPU the W ranks share its SMs and HBM: the numbers place the EP steps against each
//           other and against the single-GPU layer, not a multi-GPU run (docs/EP.md has that model).
#pragma once

#include <thread>

namespace ep_cases {

struct RankState {
  megamoe_context_t ctx = nullptr;
  megamoe_ep_layer_t layer = nullptr;
  cudaStream_t stream = nullptr;
  std::unique_ptr<DevMem> w13, s13, w2, s2, x, idx, w, y;
  megamoe_tensor_t xt{}, it{}, wt{}, yt{};
  std::vector<double> dispatch, compute, combine;
};

void ep_layer(Bench& bench, int32_t world_size, int64_t T) {
  const int64_t local = 32, E = local * world_size, k = 8, H = 7168, I = 2048;
  const std::string name = "ep/deepseek_w" + std::to_string(world_size) + "_e" + std::to_string(E) + "_t" + std::to_string(T);
  if (!bench.wanted(name)) return;
  std::vector<RankState> ranks(static_cast<size_t>(world_size));
  std::vector<megamoe_context_t> contexts;
  for (RankState& r : ranks) {
    MM_OK(megamoe_context_create(MEGAMOE_BACKEND_CUDA, 0, &r.ctx));
    CUDA_OK(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));
    contexts.push_back(r.ctx);
  }
  std::vector<megamoe_ep_comm_t> comms(static_cast<size_t>(world_size), nullptr);
  void* nccl = nullptr;
  const int32_t device = 0;
  std::string transport = "loopback";
  if (world_size == 1 && megamoe_nccl_comm_init_all(1, &device, &nccl) == MEGAMOE_SUCCESS) {
    MM_OK(megamoe_ep_comm_create_nccl(contexts[0], nccl, &comms[0]));
    transport = "nccl";
  } else {
    MM_OK(megamoe_ep_comm_create_loopback(contexts.data(), world_size, comms.data()));
  }

  // Weights and batches on this thread (the random fills share one seed counter), then the
  // collective creation on a thread per rank.
  for (int32_t r = 0; r < world_size; ++r) {
    RankState& s = ranks[static_cast<size_t>(r)];
    s.w13 = std::make_unique<DevMem>(local * 2 * I * H), s.s13 = std::make_unique<DevMem>(local * (2 * I / 128) * (H / 128) * 4);
    s.w2 = std::make_unique<DevMem>(local * H * I), s.s2 = std::make_unique<DevMem>(local * (H / 128) * (I / 128) * 4);
    random_fp8(*s.w13), random_scales(*s.s13), random_fp8(*s.w2), random_scales(*s.s2);
    const auto routing = routed_cases::routing(T, k, E, false, 17 + 31 * r);
    s.x = std::make_unique<DevMem>(T * H * 2), s.idx = std::make_unique<DevMem>(T * k * 4);
    s.w = std::make_unique<DevMem>(T * k * 4), s.y = std::make_unique<DevMem>(T * H * 2);
    fill_bf16<<<1024, 256>>>(s.x->as<uint16_t>(), T * H, g_seed++);
    fill_float<<<256, 256>>>(s.w->as<float>(), T * k, g_seed++, 0.05f, 0.3f);
    CUDA_OK(cudaMemcpy(s.idx->p, routing.data(), routing.size() * 4, cudaMemcpyHostToDevice));
    s.xt = tensor(s.x->p, MEGAMOE_DTYPE_BF16, {T, H}), s.it = tensor(s.idx->p, MEGAMOE_DTYPE_INT32, {T, k});
    s.wt = tensor(s.w->p, MEGAMOE_DTYPE_FP32, {T, k}), s.yt = tensor(s.y->p, MEGAMOE_DTYPE_BF16, {T, H});
  }
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < world_size; ++r) {
    threads.emplace_back([&, r] {
      RankState& s = ranks[static_cast<size_t>(r)];
      megamoe_ep_config_t cfg{};
      cfg.struct_size = sizeof cfg;
      cfg.flags = MEGAMOE_EP_RECORD_TIMINGS;
      cfg.num_experts = static_cast<int32_t>(E);
      cfg.top_k = static_cast<int32_t>(k);
      cfg.hidden = H;
      cfg.intermediate = I;
      cfg.max_tokens_per_rank = T;
      cfg.expert_begin = static_cast<int32_t>(r * local);
      cfg.num_local_experts = static_cast<int32_t>(local);
      cfg.activation_alpha = 1.0f;
      cfg.routed_scaling_factor = 2.5f;
      const auto w13t = tensor(s.w13->p, MEGAMOE_DTYPE_FP8_E4M3, {local, 2 * I, H});
      const auto s13t = tensor(s.s13->p, MEGAMOE_DTYPE_FP32, {local, 2 * I / 128, H / 128});
      const auto w2t = tensor(s.w2->p, MEGAMOE_DTYPE_FP8_E4M3, {local, H, I});
      const auto s2t = tensor(s.s2->p, MEGAMOE_DTYPE_FP32, {local, H / 128, I / 128});
      MM_OK(megamoe_ep_layer_create(comms[static_cast<size_t>(r)], &cfg, &w13t, &s13t, &w2t, &s2t, s.stream, &s.layer));
    });
  }
  for (auto& t : threads) t.join();
  threads.clear();

  // Forwards: every rank on its thread; per rank the layer's own timings (device time by events).
  const int runs = bench.timer.reps + 3;
  std::vector<double> totals;
  for (int32_t r = 0; r < world_size; ++r) {
    threads.emplace_back([&, r] {
      RankState& s = ranks[static_cast<size_t>(r)];
      for (int i = 0; i < runs; ++i) {
        MM_OK(megamoe_ep_layer_forward(s.layer, &s.xt, nullptr, &s.it, &s.wt, &s.yt, nullptr, s.stream));
        double d = 0, c = 0, m = 0;
        MM_OK(megamoe_ep_layer_get_timings(s.layer, &d, &c, &m));
        if (i < 3) continue;  // warm-up
        s.dispatch.push_back(d * 1000.0), s.compute.push_back(c * 1000.0), s.combine.push_back(m * 1000.0);
      }
    });
  }
  for (auto& t : threads) t.join();

  Result res;
  res.name = name;
  double slowest = 0;
  for (int32_t r = 0; r < world_size; ++r) {
    RankState& s = ranks[static_cast<size_t>(r)];
    const double d = Timer::median(s.dispatch), c = Timer::median(s.compute), m = Timer::median(s.combine);
    slowest = std::max(slowest, d + c + m);
    const std::string p = "rank" + std::to_string(r) + "_";
    res.extra.push_back({p + "dispatch_us", d});
    res.extra.push_back({p + "compute_us", c});
    res.extra.push_back({p + "combine_us", m});
  }
  res.median_us = slowest;
  res.tflops = 2.0 * T * world_size * k * (2.0 * I * H + H * I) / slowest * 1e-6;
  res.extra.push_back({"nccl", transport == "nccl" ? 1.0 : 0.0});
  print_result(res);
  bench.results.push_back(res);

  for (RankState& s : ranks) megamoe_ep_layer_destroy(s.layer);
  for (megamoe_ep_comm_t comm : comms) megamoe_ep_comm_destroy(comm);
  if (nccl != nullptr) megamoe_nccl_comm_destroy(nccl);
  for (RankState& s : ranks) {
    cudaStreamDestroy(s.stream);
    megamoe_context_destroy(s.ctx);
  }
}

}  // namespace ep_cases
