// Expert parallelism when something is wrong (docs/EP.md, "Failure handling"): a rank whose own
// arguments are bad fails with the usual message and writes nothing while its peers finish with the
// results of a clean run; creation fails on every rank alike (mismatched configs, ranges that do not
// partition the experts, a communicator of the wrong size, one rank's bad arguments or cancellation);
// dispatch/combine misuse; handle misuse; a group that loses a rank or whose calls get out of step; and
// the NCCL entry points of a build without CUDA.
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/ep_world.h"
#include "support/moe_problem.h"
#include "support/test_support.h"

namespace {

using mmt::contains;
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

const auto kSentinelLayer = reinterpret_cast<megamoe_ep_layer_t>(uintptr_t{0x5A5A5A70});

struct Outcome {
  megamoe_status_t status = MEGAMOE_ERROR_INTERNAL;
  std::string error;
  void set(megamoe_status_t st) {
    status = st;
    error = st == MEGAMOE_SUCCESS ? std::string() : last_error();
  }
};

// A problem over W ranks with its expert split and a batch per rank in which every rank sends tokens to
// every other (uniform routing, k = E / 2).
struct World {
  MoeProblem p;
  int64_t capacity;
  std::vector<int32_t> begin;
  std::vector<MoeBatch> batches;
  World(mmt::Rng& rng, int32_t w, int64_t experts, int64_t capacity_per_rank)
      : p(mmt::make_moe_problem(rng, experts, experts / 2, 128, 128, capacity_per_rank)),
        capacity(capacity_per_rank),
        begin(mmt::split_experts(experts, w)) {
    for (int32_t r = 0; r < w; ++r) batches.push_back(mmt::make_moe_batch(rng, p, capacity, Routing::Uniform));
  }
  megamoe_ep_config_t config(int32_t r, uint32_t flags = MEGAMOE_MOE_DEFAULT) const {
    const auto u = static_cast<size_t>(r);
    return mmt::ep_config(p, capacity, begin[u], begin[u + 1] - begin[u], flags);
  }
  MoeWeightArgs weights(int32_t r) const {
    const auto u = static_cast<size_t>(r);
    return MoeWeightArgs(p, WeightMode::Fp8, false, begin[u], begin[u + 1] - begin[u]);
  }
  megamoe_status_t create(megamoe_ep_comm_t comm, int32_t r, megamoe_ep_layer_t* out) const {
    const megamoe_ep_config_t c = config(r);
    const MoeWeightArgs w = weights(r);
    return megamoe_ep_layer_create(comm, &c, &w.w13_t, w.w13_scales(), &w.w2_t, w.w2_scales(), nullptr, out);
  }
};

// ------------------------------------------------------------------------------------------------
// One rank's bad forward arguments
// ------------------------------------------------------------------------------------------------
struct ForwardArgs {
  mmt::BatchTensors t;
  megamoe_tensor_t y, counts;
  const megamoe_tensor_t* weights;
  ForwardArgs(const MoeBatch& b, int64_t H, uint16_t* y_data, int32_t* counts_data, int64_t local_experts)
      : t(b, H),
        y(make_tensor(y_data, MEGAMOE_DTYPE_BF16, {b.T, H})),
        counts(make_tensor(counts_data, MEGAMOE_DTYPE_INT32, {local_experts})),
        weights(&t.w) {}
};

struct BadForward {
  const char* name;
  const char* needle;  // in the failing rank's message
  std::function<void(ForwardArgs&)> spoil;
};

TEST(EpErrors, ARankWithBadForwardArgumentsFailsAloneAndItsPeersFinish) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  constexpr int32_t W = 4, kBad = 2;
  World world_data(rng, W, 8, 6);
  const World& wd = world_data;
  const int64_t H = wd.p.cfg.H;
  const std::vector<BadForward> cases = {
      {"expert beyond E", "'topk_idx': topk_idx[3, 1] = 8 is out of range [-1, 8)",
       [](ForwardArgs& a) { a.t.idx32[3 * 4 + 1] = 8; }},
      {"expert -2", "is out of range [-1, 8)", [](ForwardArgs& a) { a.t.idx32[0] = -2; }},
      {"too many tokens", "every rank passes at most config.max_tokens_per_rank = 6",
       [](ForwardArgs& a) {
         a.t.x.shape[0] = 7;
         a.t.idx.shape[0] = 7;
         a.t.w.shape[0] = 7;
         a.y.shape[0] = 7;
       }},
      {"y of the wrong height", "'y': shape[0] is 5; expected 6", [](ForwardArgs& a) { a.y.shape[0] = 5; }},
      {"no topk_weights", "'topk_weights'", [](ForwardArgs& a) { a.weights = nullptr; }},
      {"expert_counts of global size", "'expert_counts': shape[0] is 8; expected 2",
       [](ForwardArgs& a) { a.counts.shape[0] = 8; }},
      {"y overlapping x", "'y': output memory overlaps input 'x'", [](ForwardArgs& a) { a.y.data = a.t.x.data; }},
  };

  const size_t runs = cases.size() + 1;  // a clean run, then each case
  std::vector<std::vector<std::unique_ptr<GuardedOut<uint16_t>>>> y(runs);
  std::vector<std::vector<HostVec<int32_t>>> counts(runs, std::vector<HostVec<int32_t>>(W, HostVec<int32_t>(2, 0)));
  std::vector<std::vector<Outcome>> outcome(runs, std::vector<Outcome>(W));
  for (size_t run = 0; run < runs; ++run) {
    for (int32_t r = 0; r < W; ++r) {
      y[run].push_back(std::make_unique<GuardedOut<uint16_t>>(wd.capacity * H));
    }
  }
  EpWorld world(W);
  world.run([&](int32_t r) {
    megamoe_ep_layer_t layer = nullptr;
    ASSERT_EQ(wd.create(world.comm(r), r, &layer), MEGAMOE_SUCCESS) << last_error();
    for (size_t run = 0; run < runs; ++run) {
      const auto u = static_cast<size_t>(r);
      ForwardArgs a(wd.batches[u], H, y[run][u]->data(), counts[run][u].data(), 2);
      if (run > 0 && r == kBad) cases[run - 1].spoil(a);
      outcome[run][u].set(megamoe_ep_layer_forward(layer, &a.t.x, nullptr, &a.t.idx, a.weights, &a.y, &a.counts, nullptr));
    }
    EXPECT_EQ(megamoe_ep_layer_destroy(layer), MEGAMOE_SUCCESS);
  });

  // Slots routed to rank r's experts from the ranks that took part with tokens.
  const auto want_counts = [&](int32_t r, bool with_bad) {
    std::vector<int32_t> c(2, 0);
    for (int32_t s = 0; s < W; ++s) {
      if (s == kBad && !with_bad) continue;
      for (int64_t e : wd.batches[static_cast<size_t>(s)].idx) {
        if (e >= wd.begin[static_cast<size_t>(r)] && e < wd.begin[static_cast<size_t>(r) + 1]) {
          ++c[static_cast<size_t>(e - wd.begin[static_cast<size_t>(r)])];
        }
      }
    }
    return c;
  };
  for (int32_t r = 0; r < W; ++r) {
    const auto u = static_cast<size_t>(r);
    ASSERT_EQ(outcome[0][u].status, MEGAMOE_SUCCESS) << outcome[0][u].error;
    EXPECT_EQ(std::vector<int32_t>(counts[0][u].begin(), counts[0][u].end()), want_counts(r, true));
  }
  for (size_t run = 1; run < runs; ++run) {
    SCOPED_TRACE(cases[run - 1].name);
    for (int32_t r = 0; r < W; ++r) {
      const auto u = static_cast<size_t>(r);
      if (r == kBad) {
        EXPECT_EQ(outcome[run][u].status, MEGAMOE_ERROR_INVALID_ARGUMENT);
        EXPECT_TRUE(contains(outcome[run][u].error, cases[run - 1].needle)) << outcome[run][u].error;
        EXPECT_TRUE(contains(outcome[run][u].error, "megamoe_ep_layer_forward: ")) << outcome[run][u].error;
        EXPECT_TRUE(y[run][u]->untouched()) << "the failing rank wrote y";
        EXPECT_EQ(counts[run][u], (HostVec<int32_t>{0, 0})) << "the failing rank wrote expert_counts";
      } else {
        ASSERT_EQ(outcome[run][u].status, MEGAMOE_SUCCESS) << "rank " << r << ": " << outcome[run][u].error;
        EXPECT_TRUE(mmt::bf16_bits_equal(y[run][u]->data(), y[0][u]->data(), wd.capacity * H))
            << "rank " << r << " differs from the clean run";
        EXPECT_EQ(std::vector<int32_t>(counts[run][u].begin(), counts[run][u].end()), want_counts(r, false))
            << "rank " << r << " counts the slots its peers sent, the failing rank's none";
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Creation: every rank gets the same verdict
// ------------------------------------------------------------------------------------------------
struct BadCreate {
  const char* name;
  int32_t rank;              // the rank that does something different
  megamoe_status_t status;   // on every rank
  const char* own_needle;    // in that rank's message
  const char* peer_needle;   // in the other ranks' messages
  // Changes the config or the weights of `rank`; returns false to make `rank` create a dispatcher.
  std::function<bool(const World&, megamoe_ep_config_t&, MoeWeightArgs&, bool& null_out)> spoil;
};

int32_t cancel_at_once(void* /*user*/, int64_t /*done*/, int64_t /*total*/) { return 1; }

TEST(EpErrors, CreationFailsOnEveryRankAlike) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  constexpr int32_t W = 3;
  const World wd(rng, W, 6, 4);
  const std::vector<BadCreate> cases = {
      {"top_k differs", 1, MEGAMOE_ERROR_INVALID_ARGUMENT, "config.top_k is 2 on rank 1 but 3 on rank 0",
       "config.top_k is 2 on rank 1 but 3 on rank 0",
       [](const World&, megamoe_ep_config_t& c, MoeWeightArgs&, bool&) { return c.top_k = 2, true; }},
      {"scaling differs", 2, MEGAMOE_ERROR_INVALID_ARGUMENT, "config.routed_scaling_factor is 2.5 on rank 2",
       "config.routed_scaling_factor is 2.5 on rank 2",
       [](const World&, megamoe_ep_config_t& c, MoeWeightArgs&, bool&) { return c.routed_scaling_factor = 2.5f, true; }},
      {"capacity differs", 0, MEGAMOE_ERROR_INVALID_ARGUMENT, "config.max_tokens_per_rank is 4 on rank 1 but 5",
       "config.max_tokens_per_rank is 4 on rank 1 but 5",
       [](const World&, megamoe_ep_config_t& c, MoeWeightArgs&, bool&) { return c.max_tokens_per_rank = 5, true; }},
      {"a gap between ranges", 2, MEGAMOE_ERROR_INVALID_ARGUMENT,
       "config.expert_begin is 5 on rank 2; expected 4, where rank 1's experts end",
       "must partition [0, num_experts) in rank order",
       [](const World& world_data, megamoe_ep_config_t& c, MoeWeightArgs& w, bool&) {
         c.expert_begin = 5;
         c.num_local_experts = 1;
         w = MoeWeightArgs(world_data.p, WeightMode::Fp8, false, 5, 1);
         return true;
       }},
      {"a communicator of the wrong size", 2, MEGAMOE_ERROR_INVALID_ARGUMENT,
       "the expert ranges of the 3 ranks of the communicator cover [0, 5) but config.num_experts is 6",
       "is the communicator the wrong size?",
       // The last rank's range is [4, 5), as if the experts were split for four ranks.
       [](const World& world_data, megamoe_ep_config_t& c, MoeWeightArgs& w, bool&) {
         c.num_local_experts = 1;
         w = MoeWeightArgs(world_data.p, WeightMode::Fp8, false, 4, 1);
         return true;
       }},
      {"an invalid config", 2, MEGAMOE_ERROR_INVALID_ARGUMENT, "'config': hidden (H) is 100",
       "rank 2 could not create its part: argument 'config': hidden (H) is 100",
       [](const World&, megamoe_ep_config_t& c, MoeWeightArgs&, bool&) { return c.hidden = 100, true; }},
      {"weights of the wrong shape", 0, MEGAMOE_ERROR_INVALID_ARGUMENT,
       "'w13': shape[0] is 1; expected 2 (config.num_local_experts)", "rank 0 could not create its part: argument 'w13'",
       [](const World&, megamoe_ep_config_t&, MoeWeightArgs& w, bool&) { return w.w13_t.shape[0] = 1, true; }},
      {"no out_layer", 1, MEGAMOE_ERROR_INVALID_ARGUMENT, "'out_layer': output pointer is NULL",
       "rank 1 could not create its part: argument 'out_layer'",
       [](const World&, megamoe_ep_config_t&, MoeWeightArgs&, bool& null_out) { return null_out = true, true; }},
      {"cancelled weight preparation", 2, MEGAMOE_ERROR_CANCELLED, "cancel", "rank 2 could not create its part",
       [](const World&, megamoe_ep_config_t& c, MoeWeightArgs&, bool&) { return c.progress = cancel_at_once, true; }},
      {"a dispatcher among layers", 2, MEGAMOE_ERROR_INVALID_ARGUMENT, "rank 2 creates an EP dispatcher but rank 0 an EP layer",
       "rank 2 creates an EP dispatcher but rank 0 an EP layer",
       [](const World&, megamoe_ep_config_t&, MoeWeightArgs&, bool&) { return false; }},
  };
  std::vector<std::vector<Outcome>> outcome(cases.size(), std::vector<Outcome>(W));
  std::vector<std::vector<megamoe_ep_layer_t>> out(cases.size(), std::vector<megamoe_ep_layer_t>(W, kSentinelLayer));
  std::vector<Outcome> after(W);
  const int64_t live = megamoe_live_object_count();
  {
    EpWorld world(W);
    const int64_t live_world = megamoe_live_object_count();
    std::vector<int64_t> live_after_failures(cases.size());
    world.run([&](int32_t r) {
      for (size_t i = 0; i < cases.size(); ++i) {
        megamoe_ep_config_t c = wd.config(r);
        MoeWeightArgs w = wd.weights(r);
        bool null_out = false, layer = true;
        if (r == cases[i].rank) layer = cases[i].spoil(wd, c, w, null_out);
        megamoe_ep_layer_t* target = null_out ? nullptr : &out[i][static_cast<size_t>(r)];
        if (layer) {
          outcome[i][static_cast<size_t>(r)].set(megamoe_ep_layer_create(world.comm(r), &c, &w.w13_t, w.w13_scales(),
                                                                         &w.w2_t, w.w2_scales(), nullptr, target));
        } else {
          megamoe_ep_dispatcher_t d = nullptr;
          outcome[i][static_cast<size_t>(r)].set(megamoe_ep_dispatcher_create(world.comm(r), &c, nullptr, &d));
          EXPECT_EQ(d, nullptr);
        }
      }
      // The group still works, and the EP objects are numbered alike on every rank.
      megamoe_ep_layer_t layer = nullptr;
      after[static_cast<size_t>(r)].set(wd.create(world.comm(r), r, &layer));
      megamoe_ep_layer_destroy(layer);
    });
    EXPECT_EQ(megamoe_live_object_count(), live_world) << "a failed creation left objects behind";
  }
  EXPECT_EQ(megamoe_live_object_count(), live);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    for (int32_t r = 0; r < W; ++r) {
      const Outcome& o = outcome[i][static_cast<size_t>(r)];
      EXPECT_EQ(o.status, cases[i].status) << "rank " << r << ": " << o.error;
      EXPECT_TRUE(contains(o.error, r == cases[i].rank ? cases[i].own_needle : cases[i].peer_needle))
          << "rank " << r << ": " << o.error;
      EXPECT_EQ(out[i][static_cast<size_t>(r)], kSentinelLayer) << "rank " << r << " wrote out_layer";
    }
  }
  for (const Outcome& o : after) EXPECT_EQ(o.status, MEGAMOE_SUCCESS) << o.error;
}

// ------------------------------------------------------------------------------------------------
// Dispatch and combine misuse
// ------------------------------------------------------------------------------------------------
class DispatchPair {
 public:
  DispatchPair(const World& wd, int32_t r) : wd_(wd), rank_(r) {
    const auto u = static_cast<size_t>(r);
    const int64_t rows = 2 * wd.capacity, H = wd.p.cfg.H, k = wd.p.cfg.k;
    x_.resize(static_cast<size_t>(rows * H));
    xs_.resize(static_cast<size_t>(rows * H / 128));
    idx_.resize(static_cast<size_t>(rows * k));
    w_.resize(idx_.size());
    partial_.resize(static_cast<size_t>(rows * k * H));  // room for the expanded format's rows too
    y_ = std::make_unique<GuardedOut<uint16_t>>(wd.batches[u].T * H);
  }
  megamoe_status_t dispatch(megamoe_ep_dispatcher_t d, bool bad_expert) {
    mmt::BatchTensors t(wd_.batches[static_cast<size_t>(rank_)], wd_.p.cfg.H);
    if (bad_expert) t.idx32[1] = 6;
    const int64_t rows = 2 * wd_.capacity, H = wd_.p.cfg.H, k = wd_.p.cfg.k;
    const auto rx = make_tensor(x_.data(), MEGAMOE_DTYPE_FP8_E4M3, {rows, H});
    const auto rs = make_tensor(xs_.data(), MEGAMOE_DTYPE_FP32, {rows, H / 128});
    const auto ri = make_tensor(idx_.data(), MEGAMOE_DTYPE_INT32, {rows, k});
    const auto rw = make_tensor(w_.data(), MEGAMOE_DTYPE_FP32, {rows, k});
    const auto rn = make_tensor(&count_, MEGAMOE_DTYPE_INT32, {1});
    return megamoe_ep_dispatch(d, &t.x, nullptr, &t.idx, &t.w, &rx, &rs, &ri, &rw, &rn, nullptr);
  }
  megamoe_status_t combine(megamoe_ep_dispatcher_t d, int64_t partial_rows) {
    const int64_t H = wd_.p.cfg.H;
    const auto pt = make_tensor(partial_.data(), MEGAMOE_DTYPE_FP32, {partial_rows, H});
    const auto yt = make_tensor(y_->data(), MEGAMOE_DTYPE_BF16, {wd_.batches[static_cast<size_t>(rank_)].T, H});
    return megamoe_ep_combine(d, &pt, &yt, nullptr);
  }
  bool y_untouched() const { return y_->untouched(); }

 private:
  const World& wd_;
  int32_t rank_;
  HostVec<uint8_t> x_;
  HostVec<float> xs_, w_, partial_;
  HostVec<int32_t> idx_;
  alignas(16) int32_t count_ = 0;
  std::unique_ptr<GuardedOut<uint16_t>> y_;
};

TEST(EpErrors, CombineNeedsASuccessfulDispatchOnEveryRankThatGotTokens) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const World wd(rng, 2, 6, 4);
  const int64_t rows = 2 * wd.capacity;
  // 0: combine without a dispatch; 1: rank 1's dispatch fails; 2: rank 0 combines rows of the wrong
  // format; 3: a second combine of one dispatch.
  std::vector<std::vector<Outcome>> dispatched(4, std::vector<Outcome>(2)), combined(4, std::vector<Outcome>(2));
  // uint8_t, not bool: the ranks' threads write neighbouring elements (vector<bool> shares words).
  std::vector<std::vector<uint8_t>> untouched(4, std::vector<uint8_t>(2, 0));
  EpWorld world(2);
  world.run([&](int32_t r) {
    const auto u = static_cast<size_t>(r);
    const megamoe_ep_config_t c = wd.config(r);
    megamoe_ep_dispatcher_t d = nullptr;
    ASSERT_EQ(megamoe_ep_dispatcher_create(world.comm(r), &c, nullptr, &d), MEGAMOE_SUCCESS) << last_error();
    for (int step = 0; step < 4; ++step) {
      DispatchPair pair(wd, r);
      if (step == 3) {
        DispatchPair consumed(wd, r);
        dispatched[3][u].set(consumed.dispatch(d, false));
        EXPECT_EQ(consumed.combine(d, rows), MEGAMOE_SUCCESS) << last_error();
      } else if (step > 0) {
        dispatched[static_cast<size_t>(step)][u].set(pair.dispatch(d, step == 1 && r == 1));
      }
      combined[static_cast<size_t>(step)][u].set(pair.combine(d, step == 2 && r == 0 ? rows * wd.p.cfg.k : rows));
      untouched[static_cast<size_t>(step)][u] = pair.y_untouched() ? 1 : 0;
    }
    EXPECT_EQ(megamoe_ep_dispatcher_destroy(d), MEGAMOE_SUCCESS);
  });
  const auto expect_failed = [&](int step, int32_t r, const char* needle) {
    const Outcome& o = combined[static_cast<size_t>(step)][static_cast<size_t>(r)];
    EXPECT_EQ(o.status, MEGAMOE_ERROR_INVALID_ARGUMENT) << "step " << step << " rank " << r << ": " << o.error;
    EXPECT_TRUE(contains(o.error, needle)) << "step " << step << " rank " << r << ": " << o.error;
    EXPECT_EQ(untouched[static_cast<size_t>(step)][static_cast<size_t>(r)], 1) << "step " << step << " rank " << r;
  };
  for (int32_t r = 0; r < 2; ++r) expect_failed(0, r, "holds no dispatch to combine");
  EXPECT_EQ(dispatched[1][0].status, MEGAMOE_SUCCESS) << dispatched[1][0].error;
  EXPECT_TRUE(contains(dispatched[1][1].error, "'topk_idx'")) << dispatched[1][1].error;
  expect_failed(1, 1, "the last dispatch on this rank failed, so there is nothing to combine");
  expect_failed(1, 0, "rank 1 could not compute the tokens this rank sent it (it failed with MEGAMOE_ERROR_INVALID_ARGUMENT");
  expect_failed(2, 0, "'partial': shape[0] is 24; expected 8 (max_recv_tokens");
  expect_failed(2, 1, "rank 0 could not compute the tokens this rank sent it");
  for (int32_t r = 0; r < 2; ++r) {
    EXPECT_EQ(dispatched[3][static_cast<size_t>(r)].status, MEGAMOE_SUCCESS);
    expect_failed(3, r, "holds no dispatch to combine");
  }
}

// ------------------------------------------------------------------------------------------------
// A group that loses a rank, and ranks that call out of step
// ------------------------------------------------------------------------------------------------
TEST(EpErrors, AGroupThatLosesARankFailsInsteadOfWaiting) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const World wd(rng, 2, 4, 2);
  EpWorld world(2);
  // Rank 0 waits in creation for rank 1, whose endpoint is then destroyed.
  Outcome waiting;
  std::thread rank0([&] {
    megamoe_ep_layer_t layer = kSentinelLayer;
    waiting.set(wd.create(world.comm(0), 0, &layer));
    EXPECT_EQ(layer, kSentinelLayer);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  world.drop(1);
  rank0.join();
  EXPECT_EQ(waiting.status, MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(waiting.error, "rank 1 of the loopback group is gone")) << waiting.error;
  // Every later call fails at once.
  megamoe_ep_layer_t layer = kSentinelLayer;
  EXPECT_EQ(wd.create(world.comm(0), 0, &layer), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "is gone")) << last_error();
}

TEST(EpErrors, AnObjectKeepsItsRankInTheGroupUntilItGoesToo) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const World wd(rng, 2, 4, 2);
  EpWorld world(2);
  std::vector<megamoe_ep_layer_t> layers(2, nullptr);
  world.run([&](int32_t r) { EXPECT_EQ(wd.create(world.comm(r), r, &layers[static_cast<size_t>(r)]), MEGAMOE_SUCCESS); });
  world.drop(1);  // rank 1's layer keeps its endpoint
  std::vector<Outcome> forward(2);
  const auto run_forward = [&](int32_t r) {
    HostVec<uint16_t> y(static_cast<size_t>(wd.capacity * wd.p.cfg.H));
    ForwardArgs a(wd.batches[static_cast<size_t>(r)], wd.p.cfg.H, y.data(), nullptr, 0);
    forward[static_cast<size_t>(r)].set(
        megamoe_ep_layer_forward(layers[static_cast<size_t>(r)], &a.t.x, nullptr, &a.t.idx, &a.t.w, &a.y, nullptr, nullptr));
  };
  world.run(run_forward);
  EXPECT_EQ(forward[0].status, MEGAMOE_SUCCESS) << forward[0].error;
  EXPECT_EQ(forward[1].status, MEGAMOE_SUCCESS) << forward[1].error;
  EXPECT_EQ(megamoe_ep_layer_destroy(layers[1]), MEGAMOE_SUCCESS);  // now rank 1 is gone
  run_forward(0);
  EXPECT_EQ(forward[0].status, MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(forward[0].error, "rank 1 of the loopback group is gone")) << forward[0].error;
  EXPECT_EQ(megamoe_ep_layer_destroy(layers[0]), MEGAMOE_SUCCESS);
}

TEST(EpErrors, CallsOutOfStepFailOnEveryRankAndTheGroupRecovers) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const World wd(rng, 2, 4, 2);
  EpWorld world(2);
  std::vector<Outcome> mixed(2), aligned(2);
  world.run([&](int32_t r) {
    const auto u = static_cast<size_t>(r);
    megamoe_ep_layer_t layer = nullptr;
    megamoe_ep_dispatcher_t d = nullptr;
    const megamoe_ep_config_t c = wd.config(r);
    ASSERT_EQ(wd.create(world.comm(r), r, &layer), MEGAMOE_SUCCESS) << last_error();
    ASSERT_EQ(megamoe_ep_dispatcher_create(world.comm(r), &c, nullptr, &d), MEGAMOE_SUCCESS) << last_error();
    HostVec<uint16_t> y(static_cast<size_t>(wd.capacity * wd.p.cfg.H));
    ForwardArgs a(wd.batches[u], wd.p.cfg.H, y.data(), nullptr, 0);
    DispatchPair pair(wd, r);
    // Rank 0 runs the layer while rank 1 dispatches: the first exchange does not match.
    mixed[u].set(r == 0 ? megamoe_ep_layer_forward(layer, &a.t.x, nullptr, &a.t.idx, &a.t.w, &a.y, nullptr, nullptr)
                        : pair.dispatch(d, false));
    aligned[u].set(megamoe_ep_layer_forward(layer, &a.t.x, nullptr, &a.t.idx, &a.t.w, &a.y, nullptr, nullptr));
    EXPECT_EQ(megamoe_ep_dispatcher_destroy(d), MEGAMOE_SUCCESS);
    EXPECT_EQ(megamoe_ep_layer_destroy(layer), MEGAMOE_SUCCESS);
  });
  for (int32_t r = 0; r < 2; ++r) {
    const auto u = static_cast<size_t>(r);
    EXPECT_EQ(mixed[u].status, MEGAMOE_ERROR_INVALID_ARGUMENT) << mixed[u].error;
    EXPECT_TRUE(contains(mixed[u].error, "collective calls are out of step")) << mixed[u].error;
    EXPECT_EQ(aligned[u].status, MEGAMOE_SUCCESS) << aligned[u].error;
  }
}

// ------------------------------------------------------------------------------------------------
// Handles and arguments checked before a rank can take part (W = 1: nothing to wait for)
// ------------------------------------------------------------------------------------------------
TEST(EpErrors, HandleAndArgumentMisuse) {
  mmt::ScopedContext ctx;
  megamoe_context_t good = ctx.get();
  megamoe_ep_comm_t comm = nullptr;
  const auto sentinel = reinterpret_cast<megamoe_ep_comm_t>(uintptr_t{0x5A5A5A70});
  megamoe_ep_comm_t out[2] = {sentinel, sentinel};
  const megamoe_context_t two[2] = {good, nullptr};
  const struct {
    const megamoe_context_t* contexts;
    int32_t size;
    megamoe_ep_comm_t* out;
    const char* needle;
  } loopback[] = {{nullptr, 1, out, "'contexts'"},       {&good, 0, out, "'world_size': is 0"},
                  {&good, -1, out, "'world_size'"},      {&good, 1025, out, "expected 1 to 1024"},
                  {&good, 1, nullptr, "'out_comms'"},    {two, 2, out, "'contexts[1]': handle is NULL"}};
  for (const auto& c : loopback) {
    EXPECT_EQ(megamoe_ep_comm_create_loopback(c.contexts, c.size, c.out), MEGAMOE_ERROR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(last_error(), c.needle)) << last_error();
    EXPECT_EQ(out[0], sentinel);
    EXPECT_EQ(out[1], sentinel);
  }
  ASSERT_EQ(megamoe_ep_comm_create_loopback(&good, 1, &comm), MEGAMOE_SUCCESS) << last_error();
  int32_t rank = -1, size = -1;
  EXPECT_EQ(megamoe_ep_comm_get_rank(comm, &rank, &size), MEGAMOE_SUCCESS);
  EXPECT_EQ(rank, 0);
  EXPECT_EQ(size, 1);
  EXPECT_EQ(megamoe_ep_comm_get_rank(comm, nullptr, &size), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(megamoe_ep_comm_get_rank(reinterpret_cast<megamoe_ep_comm_t>(good), &rank, &size),
            MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'comm': handle is not a live megamoe_ep_comm_t")) << last_error();

  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const World wd(rng, 1, 4, 2);
  // Config errors of a single rank: its own message, as for any other call.
  const struct {
    const char* needle;
    std::function<void(megamoe_ep_config_t&)> spoil;
  } configs[] = {
      {"'config': struct_size is 0", [](megamoe_ep_config_t& c) { c.struct_size = 0; }},
      {"flags has unknown bits 0x1000", [](megamoe_ep_config_t& c) { c.flags = 0x1000; }},
      {"expert_begin is 4; expected 0 to 3", [](megamoe_ep_config_t& c) { c.expert_begin = 4; }},
      {"num_local_experts is 0; expected 1 to 4", [](megamoe_ep_config_t& c) { c.num_local_experts = 0; }},
      {"num_local_experts is 3; expected 1 to 2", [](megamoe_ep_config_t& c) { c.expert_begin = 2, c.num_local_experts = 3; }},
      {"max_tokens_per_rank is 0", [](megamoe_ep_config_t& c) { c.max_tokens_per_rank = 0; }},
      {"must stay below 2^31", [](megamoe_ep_config_t& c) { c.max_tokens_per_rank = int64_t{1} << 30; }},
      {"activation_clamp is -1", [](megamoe_ep_config_t& c) { c.activation_clamp = -1.0f; }},
  };
  for (const auto& c : configs) {
    megamoe_ep_config_t config = wd.config(0);
    c.spoil(config);
    megamoe_ep_dispatcher_t d = nullptr;
    megamoe_ep_layer_t layer = kSentinelLayer;
    const MoeWeightArgs w = wd.weights(0);
    EXPECT_EQ(megamoe_ep_layer_create(comm, &config, &w.w13_t, w.w13_scales(), &w.w2_t, w.w2_scales(), nullptr, &layer),
              MEGAMOE_ERROR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(last_error(), c.needle)) << last_error();
    EXPECT_EQ(layer, kSentinelLayer);
    // A dispatcher ignores the layer fields (the activation), nothing else.
    const megamoe_status_t st = megamoe_ep_dispatcher_create(comm, &config, nullptr, &d);
    if (contains(c.needle, "activation")) {
      EXPECT_EQ(st, MEGAMOE_SUCCESS) << last_error();
    } else {
      EXPECT_EQ(st, MEGAMOE_ERROR_INVALID_ARGUMENT);
      EXPECT_TRUE(contains(last_error(), c.needle)) << last_error();
    }
    EXPECT_EQ(megamoe_ep_dispatcher_destroy(d), MEGAMOE_SUCCESS);
  }

  EXPECT_EQ(megamoe_ep_layer_create(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'comm': handle is NULL")) << last_error();
  const auto foreign_layer = reinterpret_cast<megamoe_ep_layer_t>(comm);
  EXPECT_EQ(megamoe_ep_layer_forward(foreign_layer, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'layer': handle is not a live megamoe_ep_layer_t")) << last_error();
  double ms = 0;
  EXPECT_EQ(megamoe_ep_layer_get_timings(nullptr, &ms, &ms, &ms), MEGAMOE_ERROR_INVALID_ARGUMENT);
  const auto foreign_dispatcher = reinterpret_cast<megamoe_ep_dispatcher_t>(comm);
  EXPECT_EQ(megamoe_ep_combine(foreign_dispatcher, nullptr, nullptr, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'dispatcher': handle is not a live megamoe_ep_dispatcher_t")) << last_error();
  int64_t sizes[2] = {0, 0};
  EXPECT_EQ(megamoe_ep_dispatcher_get_sizes(nullptr, &sizes[0], &sizes[1]), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(megamoe_ep_dispatch(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                nullptr, nullptr),
            MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(megamoe_ep_dispatch_expanded(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(megamoe_ep_dispatcher_destroy(nullptr), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_ep_layer_destroy(nullptr), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_ep_comm_destroy(nullptr), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_ep_comm_destroy(comm), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_struct_size("megamoe_ep_config_t"), static_cast<int64_t>(sizeof(megamoe_ep_config_t)));
}

TEST(EpErrors, LiveObjectsCountEveryEpHandle) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const World wd(rng, 1, 2, 2);
  mmt::ScopedContext ctx;
  megamoe_context_t context = ctx.get();
  const int64_t base = megamoe_live_object_count();
  megamoe_ep_comm_t comm = nullptr;
  ASSERT_EQ(megamoe_ep_comm_create_loopback(&context, 1, &comm), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(megamoe_live_object_count(), base + 1);
  const megamoe_ep_config_t c = wd.config(0);
  megamoe_ep_dispatcher_t d = nullptr;
  ASSERT_EQ(megamoe_ep_dispatcher_create(comm, &c, nullptr, &d), MEGAMOE_SUCCESS) << last_error();
  megamoe_ep_layer_t layer = nullptr;
  ASSERT_EQ(wd.create(comm, 0, &layer), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(megamoe_live_object_count(), base + 3);
  // The endpoint stays while its objects do; the count follows the handles.
  EXPECT_EQ(megamoe_ep_comm_destroy(comm), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_live_object_count(), base + 2);
  EXPECT_EQ(megamoe_ep_dispatcher_destroy(d), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_ep_layer_destroy(layer), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_live_object_count(), base);
}

// ------------------------------------------------------------------------------------------------
// NCCL in a build without CUDA: arguments first, then the reason it is unavailable.
// ------------------------------------------------------------------------------------------------
TEST(EpErrors, NcclEntryPointsSayWhyTheyAreUnavailable) {
  uint8_t id[MEGAMOE_NCCL_UNIQUE_ID_BYTES];
  std::memset(id, 0x5A, sizeof id);
  EXPECT_EQ(megamoe_nccl_get_unique_id(nullptr, sizeof id), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'out_id'")) << last_error();
  EXPECT_EQ(megamoe_nccl_get_unique_id(id, 64), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'size': is 64; expected MEGAMOE_NCCL_UNIQUE_ID_BYTES = 128")) << last_error();
  void* comm = reinterpret_cast<void*>(uintptr_t{0x5A5A5A70});
  const int32_t devices[2] = {0, 0};
  const struct {
    std::function<megamoe_status_t()> call;
    const char* needle;
  } invalid[] = {
      {[&] { return megamoe_nccl_comm_init_rank(0, id, sizeof id, 0, 0, &comm); }, "'world_size'"},
      {[&] { return megamoe_nccl_comm_init_rank(2, nullptr, sizeof id, 0, 0, &comm); }, "'id'"},
      {[&] { return megamoe_nccl_comm_init_rank(2, id, 16, 0, 0, &comm); }, "'id_size'"},
      {[&] { return megamoe_nccl_comm_init_rank(2, id, sizeof id, 2, 0, &comm); }, "'rank': is 2; expected 0 to 1"},
      {[&] { return megamoe_nccl_comm_init_rank(2, id, sizeof id, 0, -1, &comm); }, "'device_id'"},
      {[&] { return megamoe_nccl_comm_init_rank(2, id, sizeof id, 0, 0, nullptr); }, "'out_comm'"},
      {[&] { return megamoe_nccl_comm_init_all(0, devices, &comm); }, "'count'"},
      {[&] { return megamoe_nccl_comm_init_all(2, nullptr, &comm); }, "'device_ids'"},
      {[&] { return megamoe_nccl_comm_init_all(2, devices, &comm); }, "device_ids[1] = 0 repeats a device"},
      {[&] { return megamoe_nccl_comm_init_all(1, devices, nullptr); }, "'out_comms'"},
  };
  for (const auto& c : invalid) {
    EXPECT_EQ(c.call(), MEGAMOE_ERROR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(last_error(), c.needle)) << last_error();
  }
  mmt::ScopedContext ctx;
  megamoe_ep_comm_t ep = nullptr;
  EXPECT_EQ(megamoe_ep_comm_create_nccl(ctx, nullptr, &ep), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'nccl_comm'")) << last_error();
  EXPECT_EQ(megamoe_ep_comm_create_nccl(nullptr, comm, &ep), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(megamoe_ep_comm_create_nccl(ctx, comm, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(megamoe_ep_comm_create_nccl(ctx, comm, &ep), MEGAMOE_ERROR_BACKEND_UNAVAILABLE);
  EXPECT_TRUE(contains(last_error(), "needs a context on the CUDA backend")) << last_error();
  EXPECT_EQ(ep, nullptr);

  const std::function<megamoe_status_t()> unavailable[] = {
      [&] { return megamoe_nccl_get_unique_id(id, sizeof id); },
      [&] { return megamoe_nccl_comm_init_rank(2, id, sizeof id, 1, 0, &comm); },
      [&] { return megamoe_nccl_comm_init_all(1, devices, &comm); },
      [&] { return megamoe_nccl_comm_destroy(comm); },
  };
  for (const auto& call : unavailable) {
    EXPECT_EQ(call(), MEGAMOE_ERROR_BACKEND_UNAVAILABLE);
    EXPECT_TRUE(contains(last_error(), "built without CUDA")) << last_error();
  }
  EXPECT_EQ(comm, reinterpret_cast<void*>(uintptr_t{0x5A5A5A70})) << "nothing written on failure";
  for (uint8_t b : id) ASSERT_EQ(b, 0x5A) << "nothing written on failure";
  EXPECT_EQ(megamoe_nccl_comm_destroy(nullptr), MEGAMOE_SUCCESS);
}

}  // namespace
