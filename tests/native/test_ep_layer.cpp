// The expert-parallel MoE layer on the CPU backend over the loopback transport (docs/EP.md): W = 1, 2,
// 4, 8 ranks, one thread each, against the single layer over all E experts for every routing of the
// layer tests and uneven token counts (T = 0 and T = 1 on some ranks). W = 1 is bitwise the single
// layer; for W > 1 every element is within one BF16 ulp of it (the float32 sum over a token's slots is
// associated by rank) and within the layer tests' float64 bound; repeated runs are bitwise equal.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "support/ep_world.h"
#include "support/moe_problem.h"
#include "support/test_support.h"

namespace {

using mmt::EpWorld;
using mmt::GuardedOut;
using mmt::HostVec;
using mmt::last_error;
using mmt::make_tensor;
using mmt::MoeBatch;
using mmt::MoeProblem;
using mmt::MoeWeightArgs;
using mmt::Routing;
using mmt::WeightMode;

using EpLayer = mmt::Owned<megamoe_ep_layer_t, megamoe_ep_layer_destroy>;
using SingleLayer = mmt::Owned<megamoe_moe_layer_t, megamoe_moe_layer_destroy>;

// Rank r's weights: FP8 or BF16, canonical or interleaved, by rank (those need not agree across ranks).
WeightMode mode_of(int32_t rank) { return rank % 2 == 0 ? WeightMode::Fp8 : WeightMode::Bf16; }
bool interleaved_of(int32_t rank) { return rank % 3 == 1; }

megamoe_status_t create_ep_layer(megamoe_ep_comm_t comm, const MoeProblem& p, int64_t capacity,
                                 const std::vector<int32_t>& begin, int32_t rank, EpLayer& layer,
                                 uint32_t flags = MEGAMOE_MOE_DEFAULT) {
  const int32_t first = begin[static_cast<size_t>(rank)], count = begin[static_cast<size_t>(rank) + 1] - first;
  const MoeWeightArgs w(p, mode_of(rank), interleaved_of(rank), first, count);
  const megamoe_ep_config_t c = mmt::ep_config(
      p, capacity, first, count, flags | (interleaved_of(rank) ? MEGAMOE_MOE_W13_INTERLEAVED : MEGAMOE_MOE_DEFAULT));
  return megamoe_ep_layer_create(comm, &c, &w.w13_t, w.w13_scales(), &w.w2_t, w.w2_scales(), nullptr, layer.out());
}

megamoe_status_t ep_forward(megamoe_ep_layer_t layer, const MoeProblem& p, const MoeBatch& b, uint16_t* y,
                            int32_t* counts = nullptr, int64_t local_experts = 0, bool idx64 = false) {
  const mmt::BatchTensors t(b, p.cfg.H, idx64);
  const auto yt = make_tensor(b.T ? y : nullptr, MEGAMOE_DTYPE_BF16, {b.T, p.cfg.H});
  const auto ct = make_tensor(counts, MEGAMOE_DTYPE_INT32, {local_experts});
  return megamoe_ep_layer_forward(layer, &t.x, nullptr, &t.idx, &t.w, &yt, counts ? &ct : nullptr, nullptr);
}

// y of the single layer over all E experts.
HostVec<uint16_t> single_forward(const MoeProblem& p, const MoeBatch& b) {
  mmt::ScopedContext ctx;
  SingleLayer layer;
  const MoeWeightArgs w(p, WeightMode::Fp8, false);
  const megamoe_moe_config_t c = mmt::moe_config(p);
  EXPECT_EQ(megamoe_moe_layer_create(ctx, &c, &w.w13_t, w.w13_scales(), &w.w2_t, w.w2_scales(), nullptr, layer.out()),
            MEGAMOE_SUCCESS)
      << last_error();
  HostVec<uint16_t> y(static_cast<size_t>(b.T * p.cfg.H));
  const mmt::BatchTensors t(b, p.cfg.H);
  const auto yt = make_tensor(b.T ? y.data() : nullptr, MEGAMOE_DTYPE_BF16, {b.T, p.cfg.H});
  EXPECT_EQ(megamoe_moe_layer_forward(layer.get(), &t.x, nullptr, &t.idx, &t.w, &yt, nullptr, nullptr, nullptr),
            MEGAMOE_SUCCESS)
      << last_error();
  return y;
}

// Tokens per rank: uneven, with empty and one-token ranks once W > 1.
std::vector<int64_t> token_counts(int32_t world_size, int64_t capacity) {
  if (world_size == 1) return {capacity};
  const std::vector<int64_t> pattern = {capacity, 0, 1, 7, capacity, 3, 0, capacity - 1};
  return {pattern.begin(), pattern.begin() + world_size};
}

// Every element of `got` within one BF16 ulp of `want` (bitwise when `exact`).
// Slots routed to each global expert, over all ranks' batches.
std::vector<int32_t> global_counts(const std::vector<MoeBatch>& batches, int64_t experts) {
  std::vector<int32_t> c(static_cast<size_t>(experts), 0);
  for (const MoeBatch& b : batches)
    for (int64_t e : b.idx)
      if (e >= 0) ++c[static_cast<size_t>(e)];
  return c;
}

// One problem split over W ranks, each with its own batch and the single layer's answer for it.
struct Scenario {
  MoeProblem p;
  int32_t world_size = 1;
  int64_t capacity = 0;
  std::vector<int32_t> begin;
  std::vector<MoeBatch> batches;
  std::vector<HostVec<uint16_t>> single;

  Scenario(mmt::Rng& rng, int32_t w, int64_t experts, Routing routing, int64_t capacity_per_rank = 12)
      : p(mmt::make_moe_problem(rng, experts, 4, 256, 128, capacity_per_rank)),
        world_size(w),
        capacity(capacity_per_rank),
        begin(mmt::split_experts(experts, w)) {
    for (int64_t t : token_counts(w, capacity)) {
      batches.push_back(mmt::make_moe_batch(rng, p, t, routing));
      single.push_back(single_forward(p, batches.back()));
    }
  }
  int64_t local_experts(int32_t r) const { return begin[static_cast<size_t>(r) + 1] - begin[static_cast<size_t>(r)]; }
  const MoeBatch& batch(int32_t r) const { return batches[static_cast<size_t>(r)]; }
};

// The outputs of one forward on every rank.
struct RankOutputs {
  std::vector<std::unique_ptr<GuardedOut<uint16_t>>> y;
  std::vector<megamoe_status_t> status;
  std::vector<std::string> error;
  explicit RankOutputs(const Scenario& s) : status(static_cast<size_t>(s.world_size), MEGAMOE_ERROR_INTERNAL), error(status.size()) {
    for (const MoeBatch& b : s.batches) y.push_back(std::make_unique<GuardedOut<uint16_t>>(b.T * s.p.cfg.H));
  }
  uint16_t* at(int32_t r) { return y[static_cast<size_t>(r)]->data(); }
  void record(int32_t r, megamoe_status_t st) {
    status[static_cast<size_t>(r)] = st;
    if (st != MEGAMOE_SUCCESS) error[static_cast<size_t>(r)] = last_error();
  }
};

class EpLayerRouting : public ::testing::TestWithParam<std::tuple<int32_t, Routing>> {};

TEST_P(EpLayerRouting, MatchesTheSingleLayer) {
  const auto [world_size, routing] = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const Scenario s(rng, world_size, 8, routing);
  EpWorld world(world_size);
  RankOutputs first(s), again(s);
  std::vector<HostVec<int32_t>> counts(static_cast<size_t>(world_size));
  world.run([&](int32_t r) {
    EpLayer layer;
    const megamoe_status_t created = create_ep_layer(world.comm(r), s.p, s.capacity, s.begin, r, layer);
    first.record(r, created);
    if (created != MEGAMOE_SUCCESS) return;
    auto& c = counts[static_cast<size_t>(r)];
    c.assign(static_cast<size_t>(s.local_experts(r)), 0);
    first.record(r, ep_forward(layer.get(), s.p, s.batch(r), first.at(r), c.data(), s.local_experts(r), r % 2 == 1));
    again.record(r, ep_forward(layer.get(), s.p, s.batch(r), again.at(r)));
  });

  const std::vector<int32_t> want_counts = global_counts(s.batches, s.p.cfg.E);
  for (int32_t r = 0; r < world_size; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r) + " of " + std::to_string(world_size));
    const auto u = static_cast<size_t>(r);
    ASSERT_EQ(first.status[u], MEGAMOE_SUCCESS) << first.error[u];
    ASSERT_EQ(again.status[u], MEGAMOE_SUCCESS) << again.error[u];
    const MoeBatch& b = s.batch(r);
    const int64_t n = b.T * s.p.cfg.H;
    EXPECT_TRUE(mmt::ep_close_to_single(first.at(r), s.single[u].data(), b.T, s.p.cfg.H, world_size == 1)) << "vs the single layer";
    EXPECT_TRUE(mmt::bf16_bits_equal(again.at(r), first.at(r), n)) << "two runs differ";
    mmt::expect_within_f64_bound(s.p, b, first.at(r));
    EXPECT_TRUE(first.y[u]->guard_intact()) << "wrote past y";
    const std::vector<int32_t> want(want_counts.begin() + s.begin[u], want_counts.begin() + s.begin[u + 1]);
    EXPECT_EQ(std::vector<int32_t>(counts[u].begin(), counts[u].end()), want) << "expert_counts of the local experts";
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, EpLayerRouting,
    ::testing::Combine(::testing::Values(1, 2, 4, 8),
                       ::testing::Values(Routing::Uniform, Routing::Skewed, Routing::OneExpert,
                                         Routing::OneExpertAllSlots, Routing::Dropped, Routing::Duplicates,
                                         Routing::AllDropped)),
    [](const ::testing::TestParamInfo<std::tuple<int32_t, Routing>>& param_info) {
      std::string name = "W" + std::to_string(std::get<0>(param_info.param)) + "_" + mmt::routing_name(std::get<1>(param_info.param));
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

// Uneven expert ranges (3, 3, 2 of 8), and one rank owning most experts (7 and 1).
TEST(EpLayer, UnevenExpertRanges) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  for (const std::vector<int32_t>& begin : {std::vector<int32_t>{0, 3, 6, 8}, std::vector<int32_t>{0, 7, 8}}) {
    const auto w = static_cast<int32_t>(begin.size() - 1);
    Scenario s(rng, w, 8, Routing::Skewed);
    s.begin = begin;
    EpWorld world(w);
    RankOutputs out(s);
    world.run([&](int32_t r) {
      EpLayer layer;
      out.record(r, create_ep_layer(world.comm(r), s.p, s.capacity, s.begin, r, layer));
      if (out.status[static_cast<size_t>(r)] == MEGAMOE_SUCCESS) out.record(r, ep_forward(layer.get(), s.p, s.batch(r), out.at(r)));
    });
    for (int32_t r = 0; r < w; ++r) {
      ASSERT_EQ(out.status[static_cast<size_t>(r)], MEGAMOE_SUCCESS) << out.error[static_cast<size_t>(r)];
      EXPECT_TRUE(mmt::ep_close_to_single(out.at(r), s.single[static_cast<size_t>(r)].data(), s.batch(r).T, s.p.cfg.H, false));
    }
  }
}

// The activation variants, routed scaling and FP8 input with scales go through unchanged.
TEST(EpLayer, ActivationScalingAndFp8Input) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  Scenario s(rng, 2, 4, Routing::Dropped);
  s.p.cfg.alpha = 1.702f;
  s.p.cfg.beta = 1.0f;
  s.p.cfg.clamp = 7.0f;
  s.p.cfg.rsf = 2.5f;
  for (int32_t r = 0; r < 2; ++r) s.single[static_cast<size_t>(r)] = single_forward(s.p, s.batch(r));
  EpWorld world(2);
  RankOutputs bf16(s), fp8(s);
  world.run([&](int32_t r) {
    EpLayer layer;
    bf16.record(r, create_ep_layer(world.comm(r), s.p, s.capacity, s.begin, r, layer));
    if (bf16.status[static_cast<size_t>(r)] != MEGAMOE_SUCCESS) return;
    const MoeBatch& b = s.batch(r);
    bf16.record(r, ep_forward(layer.get(), s.p, b, bf16.at(r)));
    const int64_t T = b.T, H = s.p.cfg.H;
    HostVec<uint8_t> qx(static_cast<size_t>(T * H));
    HostVec<float> sx(static_cast<size_t>(T * H / 128));
    mmt::ref_quantize_activations(b.xf.data(), T, H, false, qx.data(), sx.data());
    const mmt::BatchTensors t(b, H);
    const auto xt = make_tensor(T ? qx.data() : nullptr, MEGAMOE_DTYPE_FP8_E4M3, {T, H});
    const auto st = make_tensor(T ? sx.data() : nullptr, MEGAMOE_DTYPE_FP32, {T, H / 128});
    const auto yt = make_tensor(T ? fp8.at(r) : nullptr, MEGAMOE_DTYPE_BF16, {T, H});
    fp8.record(r, megamoe_ep_layer_forward(layer.get(), &xt, &st, &t.idx, &t.w, &yt, nullptr, nullptr));
  });
  for (int32_t r = 0; r < 2; ++r) {
    const auto u = static_cast<size_t>(r);
    ASSERT_EQ(bf16.status[u], MEGAMOE_SUCCESS) << bf16.error[u];
    ASSERT_EQ(fp8.status[u], MEGAMOE_SUCCESS) << fp8.error[u];
    const int64_t n = s.batch(r).T * s.p.cfg.H;
    EXPECT_TRUE(mmt::ep_close_to_single(bf16.at(r), s.single[u].data(), s.batch(r).T, s.p.cfg.H, false));
    EXPECT_TRUE(mmt::bf16_bits_equal(fp8.at(r), bf16.at(r), n)) << "FP8 input quantized as the layer does";
  }
}

// T = 0 on every rank: every rank still takes part, and nothing is counted.
TEST(EpLayer, NoTokensAnywhere) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const MoeProblem p = mmt::make_moe_problem(rng, 4, 2, 128, 128, 4);
  const MoeBatch empty = mmt::make_moe_batch(rng, p, 0, Routing::Uniform);
  const std::vector<int32_t> begin = mmt::split_experts(4, 2);
  EpWorld world(2);
  std::vector<megamoe_status_t> status(2, MEGAMOE_ERROR_INTERNAL);
  std::vector<HostVec<int32_t>> counts(2, HostVec<int32_t>{5, 6});
  world.run([&](int32_t r) {
    EpLayer layer;
    auto& st = status[static_cast<size_t>(r)];
    st = create_ep_layer(world.comm(r), p, 4, begin, r, layer);
    for (int run = 0; run < 2 && st == MEGAMOE_SUCCESS; ++run) {
      st = ep_forward(layer.get(), p, empty, nullptr, counts[static_cast<size_t>(r)].data(), 2);
    }
  });
  for (int32_t r = 0; r < 2; ++r) {
    EXPECT_EQ(status[static_cast<size_t>(r)], MEGAMOE_SUCCESS) << "rank " << r;
    EXPECT_EQ(counts[static_cast<size_t>(r)], (HostVec<int32_t>{5, 6})) << "rank " << r;
  }
}

// Timings: kept only with MEGAMOE_EP_RECORD_TIMINGS, after a successful forward.
TEST(EpLayer, Timings) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const Scenario s(rng, 2, 4, Routing::Uniform);
  EpWorld world(2);
  struct Seen {
    megamoe_status_t before = MEGAMOE_SUCCESS, after = MEGAMOE_ERROR_INTERNAL, untimed = MEGAMOE_SUCCESS;
    std::string before_error, untimed_error;
    double ms[3] = {-1, -1, -1};
  };
  std::vector<Seen> seen(2);
  world.run([&](int32_t r) {
    Seen& me = seen[static_cast<size_t>(r)];
    EpLayer timed, untimed;
    ASSERT_EQ(create_ep_layer(world.comm(r), s.p, s.capacity, s.begin, r, timed, MEGAMOE_EP_RECORD_TIMINGS),
              MEGAMOE_SUCCESS)
        << last_error();
    ASSERT_EQ(create_ep_layer(world.comm(r), s.p, s.capacity, s.begin, r, untimed), MEGAMOE_SUCCESS) << last_error();
    double a = -7, b = -7, c = -7;
    me.before = megamoe_ep_layer_get_timings(timed.get(), &a, &b, &c);
    me.before_error = last_error();
    EXPECT_EQ(a, -7) << "nothing written on failure";
    HostVec<uint16_t> y(static_cast<size_t>(s.batch(r).T * s.p.cfg.H));
    ASSERT_EQ(ep_forward(timed.get(), s.p, s.batch(r), y.data()), MEGAMOE_SUCCESS) << last_error();
    ASSERT_EQ(ep_forward(untimed.get(), s.p, s.batch(r), y.data()), MEGAMOE_SUCCESS) << last_error();
    me.after = megamoe_ep_layer_get_timings(timed.get(), &me.ms[0], &me.ms[1], &me.ms[2]);
    me.untimed = megamoe_ep_layer_get_timings(untimed.get(), &a, &b, &c);
    me.untimed_error = last_error();
    EXPECT_EQ(megamoe_ep_layer_get_timings(timed.get(), nullptr, &b, &c), MEGAMOE_ERROR_INVALID_ARGUMENT);
    EXPECT_TRUE(mmt::contains(last_error(), "'out_dispatch_ms'")) << last_error();
  });
  for (const Seen& me : seen) {
    EXPECT_EQ(me.before, MEGAMOE_ERROR_INVALID_ARGUMENT);
    EXPECT_TRUE(mmt::contains(me.before_error, "no forward has succeeded")) << me.before_error;
    EXPECT_EQ(me.after, MEGAMOE_SUCCESS);
    for (double ms : me.ms) EXPECT_GE(ms, 0.0);
    EXPECT_EQ(me.untimed, MEGAMOE_ERROR_INVALID_ARGUMENT);
    EXPECT_TRUE(mmt::contains(me.untimed_error, "MEGAMOE_EP_RECORD_TIMINGS")) << me.untimed_error;
  }
}

}  // namespace
