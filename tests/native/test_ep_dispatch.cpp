// Expert-parallel dispatch and combine on their own (docs/EP.md), on the CPU backend over the loopback
// transport, against an independent reference of both formats: what each rank receives (rows, local
// experts, weights, counts, the expanded order and offsets) and what each combine returns, bit for bit.
#include <algorithm>
#include <cmath>
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
using mmt::Routing;

using Dispatcher = mmt::Owned<megamoe_ep_dispatcher_t, megamoe_ep_dispatcher_destroy>;

// One received token of the reference: where it came from and what arrives.
struct Arrival {
  int32_t source;
  int64_t token;
  std::vector<int32_t> local;  // [k]
};

// The reference: every rank's batch quantized, and what rank r receives, in order.
struct Reference {
  const MoeProblem& p;
  std::vector<int32_t> begin;
  const std::vector<MoeBatch>& batches;
  std::vector<HostVec<uint8_t>> qx;
  std::vector<HostVec<float>> sx;

  Reference(const MoeProblem& problem, std::vector<int32_t> ranges, const std::vector<MoeBatch>& b)
      : p(problem), begin(std::move(ranges)), batches(b) {
    const int64_t H = p.cfg.H;
    for (const MoeBatch& batch : batches) {
      qx.emplace_back(static_cast<size_t>(batch.T * H));
      sx.emplace_back(static_cast<size_t>(batch.T * H / 128));
      mmt::ref_quantize_activations(batch.xf.data(), batch.T, H, false, qx.back().data(), sx.back().data());
    }
  }

  std::vector<Arrival> arrivals(int32_t r) const {
    const int32_t first = begin[static_cast<size_t>(r)], last = begin[static_cast<size_t>(r) + 1];
    std::vector<Arrival> out;
    for (size_t s = 0; s < batches.size(); ++s) {
      const MoeBatch& b = batches[s];
      for (int64_t t = 0; t < b.T; ++t) {
        Arrival a{static_cast<int32_t>(s), t, {}};
        bool mine = false;
        for (int64_t j = 0; j < b.k; ++j) {
          const int64_t e = b.idx[static_cast<size_t>(t * b.k + j)];
          const bool here = e >= first && e < last;
          a.local.push_back(here ? static_cast<int32_t>(e - first) : -1);
          mine = mine || here;
        }
        if (mine) out.push_back(a);
      }
    }
    return out;
  }

  // Rows of the expanded format: (arrival, slot) by local expert, stable in arrival and slot order.
  std::vector<std::pair<int64_t, int64_t>> expanded(int32_t r) const {
    const std::vector<Arrival> arrived = arrivals(r);
    std::vector<std::pair<int64_t, int64_t>> rows;
    const int32_t experts = begin[static_cast<size_t>(r) + 1] - begin[static_cast<size_t>(r)];
    for (int32_t e = 0; e < experts; ++e)
      for (size_t i = 0; i < arrived.size(); ++i)
        for (int64_t j = 0; j < p.cfg.k; ++j)
          if (arrived[i].local[static_cast<size_t>(j)] == e) rows.emplace_back(static_cast<int64_t>(i), j);
    return rows;
  }
};

// The output buffers of one rank's dispatch in both formats, poisoned.
struct Received {
  int64_t rows = 0, expanded_rows = 0;
  GuardedOut<uint8_t> x, xe;
  GuardedOut<float> scales, scales_e, weights;
  GuardedOut<int32_t> idx, count, offsets;
  Received(int64_t r_max, int64_t k, int64_t H, int64_t experts)
      : rows(r_max),
        expanded_rows(r_max * k),
        x(r_max * H),
        xe(r_max * k * H),
        scales(r_max * H / 128),
        scales_e(r_max * k * H / 128),
        weights(r_max * k),
        idx(r_max * k),
        count(1),
        offsets(experts + 1) {}
};

// Partial results of rank r's received rows, random; `bf16` rounds them to BF16 (bits in the low half).
struct Partial {
  HostVec<float> f32;
  HostVec<uint16_t> bf16;
  Partial(mmt::Rng& rng, int64_t rows, int64_t H) : f32(mmt::random_normal(rng, rows * H)), bf16(mmt::to_bf16(f32)) {}
  float value(bool as_bf16, int64_t i) const {
    return as_bf16 ? mmt::bf16_decode(bf16[static_cast<size_t>(i)]) : f32[static_cast<size_t>(i)];
  }
  megamoe_tensor_t tensor(bool as_bf16, int64_t rows, int64_t H) const {
    return as_bf16 ? make_tensor(bf16.data(), MEGAMOE_DTYPE_BF16, {rows, H})
                   : make_tensor(f32.data(), MEGAMOE_DTYPE_FP32, {rows, H});
  }
};

struct DispatchCase {
  const char* name;
  int32_t world_size;
  std::vector<int32_t> begin;  // expert ranges
  Routing routing;
  bool fp8_input_on_rank1;
};

void PrintTo(const DispatchCase& c, std::ostream* os) { *os << c.name; }

class EpDispatch : public ::testing::TestWithParam<DispatchCase> {};

TEST_P(EpDispatch, BothFormatsAndTheirCombinesMatchTheReference) {
  const DispatchCase& c = GetParam();
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const int32_t W = c.world_size;
  const int64_t C = 6, E = c.begin.back(), k = 3, H = 256;
  const MoeProblem p = mmt::make_moe_problem(rng, E, k, H, 128, C);
  std::vector<MoeBatch> batches;
  const std::vector<int64_t> tokens = {C, 0, 1, C - 1, 2};
  for (int32_t r = 0; r < W; ++r) batches.push_back(mmt::make_moe_batch(rng, p, W == 1 ? C : tokens[static_cast<size_t>(r)], c.routing));
  const Reference ref(p, c.begin, batches);
  const int64_t r_max = W * C;
  std::vector<std::unique_ptr<Received>> got;
  std::vector<Partial> partial, partial_e;
  std::vector<std::unique_ptr<GuardedOut<uint16_t>>> y, ye;
  for (int32_t r = 0; r < W; ++r) {
    const int32_t experts = c.begin[static_cast<size_t>(r) + 1] - c.begin[static_cast<size_t>(r)];
    got.push_back(std::make_unique<Received>(r_max, k, H, experts));
    partial.emplace_back(rng, r_max, H);
    partial_e.emplace_back(rng, r_max * k, H);
    y.push_back(std::make_unique<GuardedOut<uint16_t>>(batches[static_cast<size_t>(r)].T * H));
    ye.push_back(std::make_unique<GuardedOut<uint16_t>>(batches[static_cast<size_t>(r)].T * H));
  }

  EpWorld world(W);
  std::vector<std::string> failures(static_cast<size_t>(W));
  world.run([&](int32_t r) {
    const auto u = static_cast<size_t>(r);
    std::string& failure = failures[u];
    const auto check = [&](megamoe_status_t st, const char* what) {
      if (st != MEGAMOE_SUCCESS && failure.empty()) failure = std::string(what) + ": " + last_error();
      return st == MEGAMOE_SUCCESS;
    };
    const int32_t first = c.begin[u], experts = c.begin[u + 1] - first;
    const megamoe_ep_config_t config = mmt::ep_config(p, C, first, experts);
    Dispatcher d;
    if (!check(megamoe_ep_dispatcher_create(world.comm(r), &config, nullptr, d.out()), "create")) return;
    int64_t sizes[2] = {-1, -1};
    check(megamoe_ep_dispatcher_get_sizes(d.get(), &sizes[0], &sizes[1]), "get_sizes");
    if (sizes[0] != r_max || sizes[1] != r_max * k) failure = "wrong sizes";

    const MoeBatch& b = batches[u];
    const mmt::BatchTensors t(b, H, r % 2 == 1);
    const bool fp8 = c.fp8_input_on_rank1 && r == 1;
    const auto xq = make_tensor(b.T ? ref.qx[u].data() : nullptr, MEGAMOE_DTYPE_FP8_E4M3, {b.T, H});
    const auto xs = make_tensor(b.T ? ref.sx[u].data() : nullptr, MEGAMOE_DTYPE_FP32, {b.T, H / 128});
    Received& g = *got[u];
    const auto rx = make_tensor(g.x.data(), MEGAMOE_DTYPE_FP8_E4M3, {r_max, H});
    const auto rs = make_tensor(g.scales.data(), MEGAMOE_DTYPE_FP32, {r_max, H / 128});
    const auto ri = make_tensor(g.idx.data(), MEGAMOE_DTYPE_INT32, {r_max, k});
    const auto rw = make_tensor(g.weights.data(), MEGAMOE_DTYPE_FP32, {r_max, k});
    const auto rn = make_tensor(g.count.data(), MEGAMOE_DTYPE_INT32, {1});
    if (!check(megamoe_ep_dispatch(d.get(), fp8 ? &xq : &t.x, fp8 ? &xs : nullptr, &t.idx, &t.w, &rx, &rs, &ri, &rw,
                                   &rn, nullptr),
               "dispatch")) {
      return;
    }
    const bool bf16_partial = r % 2 == 0;
    const auto pt = partial[u].tensor(bf16_partial, r_max, H);
    const auto yt = make_tensor(b.T ? y[u]->data() : nullptr, MEGAMOE_DTYPE_BF16, {b.T, H});
    if (!check(megamoe_ep_combine(d.get(), &pt, &yt, nullptr), "combine")) return;

    const auto ex = make_tensor(g.xe.data(), MEGAMOE_DTYPE_FP8_E4M3, {r_max * k, H});
    const auto es = make_tensor(g.scales_e.data(), MEGAMOE_DTYPE_FP32, {r_max * k, H / 128});
    const auto eo = make_tensor(g.offsets.data(), MEGAMOE_DTYPE_INT32, {experts + 1});
    if (!check(megamoe_ep_dispatch_expanded(d.get(), fp8 ? &xq : &t.x, fp8 ? &xs : nullptr, &t.idx, &t.w, &ex, &es,
                                            &eo, nullptr),
               "dispatch_expanded")) {
      return;
    }
    const auto pe = partial_e[u].tensor(!bf16_partial, r_max * k, H);
    const auto yet = make_tensor(b.T ? ye[u]->data() : nullptr, MEGAMOE_DTYPE_BF16, {b.T, H});
    check(megamoe_ep_combine(d.get(), &pe, &yet, nullptr), "combine after dispatch_expanded");
  });

  // Rank p's float32 result row for arrival i: the partial row, or the weighted sum of its slot rows.
  std::vector<std::vector<std::vector<float>>> rows(static_cast<size_t>(W)), rows_e(static_cast<size_t>(W));
  for (int32_t r = 0; r < W; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    const auto u = static_cast<size_t>(r);
    ASSERT_TRUE(failures[u].empty()) << failures[u];
    const Received& g = *got[u];
    const std::vector<Arrival> arrived = ref.arrivals(r);
    const auto R = static_cast<int64_t>(arrived.size());
    ASSERT_EQ(g.count[0], R) << "recv_num_tokens";
    for (int64_t i = 0; i < R; ++i) {
      const Arrival& a = arrived[static_cast<size_t>(i)];
      const auto s = static_cast<size_t>(a.source);
      ASSERT_TRUE(mmt::bytes_equal(g.x.data() + i * H, ref.qx[s].data() + a.token * H, H)) << "recv_x row " << i;
      ASSERT_TRUE(mmt::float_bits_equal(g.scales.data() + i * H / 128, ref.sx[s].data() + a.token * H / 128, H / 128));
      ASSERT_EQ(std::vector<int32_t>(g.idx.data() + i * k, g.idx.data() + (i + 1) * k), a.local) << "row " << i;
      ASSERT_TRUE(mmt::float_bits_equal(g.weights.data() + i * k, batches[s].w.data() + a.token * k, k));
    }
    EXPECT_TRUE(mmt::all_bytes_are(g.x.data() + R * H, static_cast<size_t>((r_max - R) * H))) << "rows >= R written";
    EXPECT_TRUE(mmt::all_bytes_are(g.idx.data() + R * k, static_cast<size_t>((r_max - R) * k)));
    EXPECT_TRUE(g.x.guard_intact() && g.scales.guard_intact() && g.idx.guard_intact() && g.weights.guard_intact());

    const auto order = ref.expanded(r);
    const int32_t experts = c.begin[u + 1] - c.begin[u];
    std::vector<int32_t> offsets(static_cast<size_t>(experts) + 1, 0);
    for (const auto& [i, j] : order) ++offsets[static_cast<size_t>(arrived[static_cast<size_t>(i)].local[static_cast<size_t>(j)]) + 1];
    for (int32_t e = 0; e < experts; ++e) offsets[static_cast<size_t>(e) + 1] += offsets[static_cast<size_t>(e)];
    EXPECT_EQ(std::vector<int32_t>(g.offsets.data(), g.offsets.data() + experts + 1), offsets) << "recv_offsets";
    std::vector<std::vector<int64_t>> slot_row(static_cast<size_t>(R), std::vector<int64_t>(static_cast<size_t>(k), -1));
    for (size_t row = 0; row < order.size(); ++row) {
      const auto [i, j] = order[row];
      slot_row[static_cast<size_t>(i)][static_cast<size_t>(j)] = static_cast<int64_t>(row);
      const Arrival& a = arrived[static_cast<size_t>(i)];
      ASSERT_TRUE(mmt::bytes_equal(g.xe.data() + static_cast<int64_t>(row) * H,
                                   ref.qx[static_cast<size_t>(a.source)].data() + a.token * H, H))
          << "expanded row " << row;
    }
    const auto used = static_cast<int64_t>(order.size());
    EXPECT_TRUE(mmt::all_bytes_are(g.xe.data() + used * H, static_cast<size_t>((r_max * k - used) * H)));

    const bool bf16_partial = r % 2 == 0;
    for (int64_t i = 0; i < R; ++i) {
      std::vector<float> row(static_cast<size_t>(H)), row_e(static_cast<size_t>(H), 0.0f);
      for (int64_t h = 0; h < H; ++h) row[static_cast<size_t>(h)] = partial[u].value(bf16_partial, i * H + h);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t at = slot_row[static_cast<size_t>(i)][static_cast<size_t>(j)];
        if (at < 0) continue;
        const float w = batches[static_cast<size_t>(arrived[static_cast<size_t>(i)].source)].w[static_cast<size_t>(arrived[static_cast<size_t>(i)].token * k + j)];
        for (int64_t h = 0; h < H; ++h) {
          float& out = row_e[static_cast<size_t>(h)];
          out = std::fma(w, partial_e[u].value(!bf16_partial, at * H + h), out);
        }
      }
      rows[u].push_back(row);
      rows_e[u].push_back(row_e);
    }
  }

  // y of rank s: the rows of its tokens on every rank, added in rank order.
  for (int32_t s = 0; s < W; ++s) {
    SCOPED_TRACE("combine on rank " + std::to_string(s));
    const MoeBatch& b = batches[static_cast<size_t>(s)];
    HostVec<uint16_t> want(static_cast<size_t>(b.T * H)), want_e(want.size());
    for (int64_t t = 0; t < b.T; ++t) {
      std::vector<float> sum(static_cast<size_t>(H), 0.0f), sum_e(static_cast<size_t>(H), 0.0f);
      for (int32_t at = 0; at < W; ++at) {
        const std::vector<Arrival> arrived = ref.arrivals(at);
        for (size_t i = 0; i < arrived.size(); ++i) {
          if (arrived[i].source != s || arrived[i].token != t) continue;
          for (int64_t h = 0; h < H; ++h) {
            sum[static_cast<size_t>(h)] += rows[static_cast<size_t>(at)][i][static_cast<size_t>(h)];
            sum_e[static_cast<size_t>(h)] += rows_e[static_cast<size_t>(at)][i][static_cast<size_t>(h)];
          }
        }
      }
      for (int64_t h = 0; h < H; ++h) {
        want[static_cast<size_t>(t * H + h)] = mmt::bf16_encode(sum[static_cast<size_t>(h)]);
        want_e[static_cast<size_t>(t * H + h)] = mmt::bf16_encode(sum_e[static_cast<size_t>(h)]);
      }
    }
    EXPECT_TRUE(mmt::bf16_bits_equal(y[static_cast<size_t>(s)]->data(), want.data(), b.T * H)) << "after dispatch";
    EXPECT_TRUE(mmt::bf16_bits_equal(ye[static_cast<size_t>(s)]->data(), want_e.data(), b.T * H))
        << "after dispatch_expanded";
    EXPECT_TRUE(y[static_cast<size_t>(s)]->guard_intact() && ye[static_cast<size_t>(s)]->guard_intact());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, EpDispatch,
    ::testing::Values(DispatchCase{"one_rank", 1, {0, 5}, Routing::Duplicates, false},
                      DispatchCase{"two_ranks_skewed", 2, {0, 3, 5}, Routing::Skewed, true},
                      DispatchCase{"three_ranks_dropped", 3, {0, 1, 4, 5}, Routing::Dropped, true},
                      DispatchCase{"four_ranks_duplicates", 4, {0, 2, 3, 4, 6}, Routing::Duplicates, false},
                      DispatchCase{"five_ranks_one_expert", 5, {0, 1, 2, 3, 4, 5}, Routing::OneExpertAllSlots, true}),
    [](const ::testing::TestParamInfo<DispatchCase>& param_info) { return std::string(param_info.param.name); });

// The expanded format feeds megamoe_gemm_grouped_offsets as it is, and the GEMM's BF16 rows combine.
TEST(EpDispatch, ExpandedRowsFeedTheGroupedGemmByOffsets) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const int64_t C = 4, E = 4, k = 2, H = 128;
  const MoeProblem p = mmt::make_moe_problem(rng, E, k, H, 128, C);
  const std::vector<int32_t> begin = {0, 2, 4};
  std::vector<MoeBatch> batches = {mmt::make_moe_batch(rng, p, C, Routing::Uniform),
                                   mmt::make_moe_batch(rng, p, 3, Routing::Uniform)};
  const int64_t rows = 2 * C * k;
  // The same two local experts' weights [2, N = H, K = H] on both ranks.
  const HostVec<uint8_t> b = mmt::random_fp8(rng, 2 * H * H);
  const HostVec<float> bs = mmt::random_scales(rng, 2);
  EpWorld world(2);
  std::vector<HostVec<uint16_t>> d(2, HostVec<uint16_t>(static_cast<size_t>(rows * H)));
  std::vector<HostVec<uint8_t>> x(2, HostVec<uint8_t>(static_cast<size_t>(rows * H)));
  std::vector<HostVec<float>> xs(2, HostVec<float>(static_cast<size_t>(rows * H / 128)));
  std::vector<HostVec<uint16_t>> y(2);
  std::vector<HostVec<int32_t>> offsets(2, HostVec<int32_t>(3));
  std::vector<std::string> failures(2);
  world.run([&](int32_t r) {
    const auto u = static_cast<size_t>(r);
    const megamoe_ep_config_t config = mmt::ep_config(p, C, begin[u], 2);
    Dispatcher disp;
    const mmt::BatchTensors t(batches[u], H);
    const auto xt = make_tensor(x[u].data(), MEGAMOE_DTYPE_FP8_E4M3, {rows, H});
    const auto st = make_tensor(xs[u].data(), MEGAMOE_DTYPE_FP32, {rows, H / 128});
    const auto ot = make_tensor(offsets[u].data(), MEGAMOE_DTYPE_INT32, {3});
    const auto bt = make_tensor(b.data(), MEGAMOE_DTYPE_FP8_E4M3, {2, H, H});
    const auto bst = make_tensor(bs.data(), MEGAMOE_DTYPE_FP32, {2, 1, 1});
    const auto dt = make_tensor(d[u].data(), MEGAMOE_DTYPE_BF16, {rows, H});
    y[u].resize(static_cast<size_t>(batches[u].T * H));
    const auto yt = make_tensor(y[u].data(), MEGAMOE_DTYPE_BF16, {batches[u].T, H});
    if (megamoe_ep_dispatcher_create(world.comm(r), &config, nullptr, disp.out()) != MEGAMOE_SUCCESS ||
        megamoe_ep_dispatch_expanded(disp.get(), &t.x, nullptr, &t.idx, &t.w, &xt, &st, &ot, nullptr) != MEGAMOE_SUCCESS ||
        megamoe_gemm_grouped_offsets(world.context(r), &xt, &st, &bt, &bst, &ot, &dt, nullptr) != MEGAMOE_SUCCESS ||
        megamoe_ep_combine(disp.get(), &dt, &yt, nullptr) != MEGAMOE_SUCCESS) {
      failures[u] = last_error();
    }
  });
  ASSERT_TRUE(failures[0].empty()) << failures[0];
  ASSERT_TRUE(failures[1].empty()) << failures[1];
  for (size_t r = 0; r < 2; ++r) {
    for (int64_t e = 0; e < 2; ++e) {
      const int64_t first = offsets[r][static_cast<size_t>(e)], count = offsets[r][static_cast<size_t>(e) + 1] - first;
      HostVec<uint16_t> want(static_cast<size_t>(count * H));
      mmt::ref_gemm_dense(x[r].data() + first * H, xs[r].data() + first, b.data() + e * H * H, bs.data() + e, count, H, H,
                          want.data());
      EXPECT_TRUE(mmt::bf16_bits_equal(d[r].data() + first * H, want.data(), count * H)) << "rank " << r << " expert " << e;
    }
  }
  // Every slot of every token is local to one of the two ranks (no dropped slots): y[t] adds, by rank, the
  // fmaf chain of its slots' GEMM rows. The rows of a slot are found through the reference order.
  const Reference ref(p, begin, batches);
  for (int32_t s = 0; s < 2; ++s) {
    const MoeBatch& bt = batches[static_cast<size_t>(s)];
    HostVec<uint16_t> want(static_cast<size_t>(bt.T * H));
    for (int64_t t = 0; t < bt.T; ++t) {
      std::vector<float> sum(static_cast<size_t>(H), 0.0f);
      for (int32_t p_rank = 0; p_rank < 2; ++p_rank) {
        const auto arrived = ref.arrivals(p_rank);
        const auto order = ref.expanded(p_rank);
        for (size_t i = 0; i < arrived.size(); ++i) {
          if (arrived[i].source != s || arrived[i].token != t) continue;
          std::vector<float> row(static_cast<size_t>(H), 0.0f);
          for (int64_t j = 0; j < k; ++j) {
            const auto at = std::find(order.begin(), order.end(), std::make_pair(static_cast<int64_t>(i), j));
            if (at == order.end()) continue;
            const int64_t expanded_row = at - order.begin();
            for (int64_t h = 0; h < H; ++h) {
              row[static_cast<size_t>(h)] =
                  std::fma(bt.w[static_cast<size_t>(t * k + j)],
                           mmt::bf16_decode(d[static_cast<size_t>(p_rank)][static_cast<size_t>(expanded_row * H + h)]),
                           row[static_cast<size_t>(h)]);
            }
          }
          for (int64_t h = 0; h < H; ++h) sum[static_cast<size_t>(h)] += row[static_cast<size_t>(h)];
        }
      }
      for (int64_t h = 0; h < H; ++h) want[static_cast<size_t>(t * H + h)] = mmt::bf16_encode(sum[static_cast<size_t>(h)]);
    }
    EXPECT_TRUE(mmt::bf16_bits_equal(y[static_cast<size_t>(s)].data(), want.data(), bt.T * H)) << "rank " << s;
  }
}

}  // namespace
