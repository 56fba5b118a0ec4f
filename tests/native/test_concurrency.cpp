// The thread-safety contract of docs/API.md ("Threads and streams"): contexts and stateless
// operations may be used from many threads at once; a MoE layer serializes concurrent forwards; the
// handle registry serves threads creating and destroying handles. CI also runs these under
// ThreadSanitizer (the tsan preset).
// Every thread's result must be bitwise what the same call gives when run alone.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace {

using mmt::HostVec;

constexpr int kThreads = 4;

// Random FP8 operands of a dense GEMM and its reference output.
struct DenseProblem {
  int64_t m = 0, n = 0, k = 0;
  HostVec<uint8_t> a, b;
  HostVec<float> sa, sb;
  HostVec<uint16_t> want;

  DenseProblem(mmt::Rng& rng, int64_t rows, int64_t cols, int64_t depth) : m(rows), n(cols), k(depth) {
    a = mmt::random_fp8(rng, m * k);
    b = mmt::random_fp8(rng, n * k);
    sa = mmt::random_scales(rng, m * (k / 128));
    sb = mmt::random_scales(rng, (n / 128) * (k / 128));
    want.resize(static_cast<size_t>(m * n));
    mmt::ref_gemm_dense(a.data(), sa.data(), b.data(), sb.data(), m, n, k, want.data());
  }

  // Runs the GEMM on `ctx`; returns "" on a bitwise match, else what went wrong.
  std::string run(megamoe_context_t ctx) const {
    HostVec<uint16_t> d(static_cast<size_t>(m * n));
    mmt::poison(d);
    const auto ta = mmt::make_tensor(a.data(), MEGAMOE_DTYPE_FP8_E4M3, {m, k});
    const auto tsa = mmt::make_tensor(sa.data(), MEGAMOE_DTYPE_FP32, {m, k / 128});
    const auto tb = mmt::make_tensor(b.data(), MEGAMOE_DTYPE_FP8_E4M3, {n, k});
    const auto tsb = mmt::make_tensor(sb.data(), MEGAMOE_DTYPE_FP32, {n / 128, k / 128});
    const auto td = mmt::make_tensor(d.data(), MEGAMOE_DTYPE_BF16, {m, n});
    if (megamoe_gemm_dense(ctx, &ta, &tsa, &tb, &tsb, &td, nullptr) != MEGAMOE_SUCCESS) return mmt::last_error();
    for (size_t i = 0; i < d.size(); ++i) {
      if (d[i] != want[i]) return "output " + std::to_string(i) + " differs from the reference";
    }
    return "";
  }
};


TEST(Concurrency, ThreadsWithTheirOwnContexts) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  std::vector<DenseProblem> problems;
  for (int t = 0; t < kThreads; ++t) problems.emplace_back(rng, 48, 256, 512);
  const auto verdicts = mmt::on_threads(kThreads, [&](int t) -> std::string {
    megamoe_context_t ctx = nullptr;
    if (megamoe_context_create(MEGAMOE_BACKEND_CPU, 0, &ctx) != MEGAMOE_SUCCESS) return mmt::last_error();
    std::string verdict;
    for (int iteration = 0; iteration < 3 && verdict.empty(); ++iteration) verdict = problems[static_cast<size_t>(t)].run(ctx);
    megamoe_context_destroy(ctx);
    return verdict;
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(verdicts[static_cast<size_t>(t)], "") << "thread " << t;
}

TEST(Concurrency, ThreadsSharingOneContext) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  std::vector<DenseProblem> problems;
  for (int t = 0; t < kThreads; ++t) problems.emplace_back(rng, 33, 128, 384);
  const auto verdicts = mmt::on_threads(kThreads, [&](int t) -> std::string {
    std::string verdict;
    for (int iteration = 0; iteration < 5 && verdict.empty(); ++iteration) verdict = problems[static_cast<size_t>(t)].run(ctx);
    return verdict;
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(verdicts[static_cast<size_t>(t)], "") << "thread " << t;
}

TEST(Concurrency, OneLayerSharedByThreadsGivesTheBitsOfARunAlone) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  constexpr int64_t E = 4, H = 256, I = 128, T = 6;
  constexpr int32_t K = 2;
  const auto w13 = mmt::random_fp8(rng, E * 2 * I * H);
  const auto s13 = mmt::random_scales(rng, E * (2 * I / 128) * (H / 128), -6, -3);
  const auto w2 = mmt::random_fp8(rng, E * H * I);
  const auto s2 = mmt::random_scales(rng, E * (H / 128) * (I / 128), -6, -3);
  const megamoe_moe_config_t config = mmt::moe_config(E, K, H, I, T);
  const auto t13 = mmt::make_tensor(w13.data(), MEGAMOE_DTYPE_FP8_E4M3, {E, 2 * I, H});
  const auto ts13 = mmt::make_tensor(s13.data(), MEGAMOE_DTYPE_FP32, {E, 2 * I / 128, H / 128});
  const auto t2 = mmt::make_tensor(w2.data(), MEGAMOE_DTYPE_FP8_E4M3, {E, H, I});
  const auto ts2 = mmt::make_tensor(s2.data(), MEGAMOE_DTYPE_FP32, {E, H / 128, I / 128});
  megamoe_moe_layer_t layer = nullptr;
  ASSERT_EQ(megamoe_moe_layer_create(ctx, &config, &t13, &ts13, &t2, &ts2, nullptr, &layer), MEGAMOE_SUCCESS)
      << mmt::last_error();

  // Each thread's own batch, and its output when run alone.
  struct Batch {
    HostVec<uint16_t> x, alone;
    HostVec<int32_t> idx;
    HostVec<float> weights;
  };
  std::vector<Batch> batches(kThreads);
  const auto forward = [&](const Batch& b, HostVec<uint16_t>& y) {
    const auto tx = mmt::make_tensor(b.x.data(), MEGAMOE_DTYPE_BF16, {T, H});
    const auto ti = mmt::make_tensor(b.idx.data(), MEGAMOE_DTYPE_INT32, {T, K});
    const auto tw = mmt::make_tensor(b.weights.data(), MEGAMOE_DTYPE_FP32, {T, K});
    const auto ty = mmt::make_tensor(y.data(), MEGAMOE_DTYPE_BF16, {T, H});
    return megamoe_moe_layer_forward(layer, &tx, nullptr, &ti, &tw, &ty, nullptr, nullptr, nullptr);
  };
  for (auto& b : batches) {
    b.x = mmt::to_bf16(mmt::random_normal(rng, T * H));
    for (int64_t s = 0; s < T * K; ++s) {
      b.idx.push_back(static_cast<int32_t>(rng.range(-1, E - 1)));
      b.weights.push_back(static_cast<float>(rng.uniform(0.1, 1.0)));
    }
    b.alone.resize(static_cast<size_t>(T * H));
    ASSERT_EQ(forward(b, b.alone), MEGAMOE_SUCCESS) << mmt::last_error();
  }

  const auto verdicts = mmt::on_threads(kThreads, [&](int t) -> std::string {
    const Batch& b = batches[static_cast<size_t>(t)];
    for (int iteration = 0; iteration < 4; ++iteration) {
      HostVec<uint16_t> y(static_cast<size_t>(T * H));
      mmt::poison(y);
      if (forward(b, y) != MEGAMOE_SUCCESS) return mmt::last_error();
      if (y != b.alone) return "iteration " + std::to_string(iteration) + " differs from the run alone";
    }
    return "";
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(verdicts[static_cast<size_t>(t)], "") << "thread " << t;
  EXPECT_EQ(megamoe_moe_layer_destroy(layer), MEGAMOE_SUCCESS);
}

// The handle registry under contention: threads create, use and destroy buffers on one context while
// the others do the same, and each sees its own destroyed handles rejected with its own last error.
TEST(Concurrency, HandlesCreatedUsedAndDestroyedOnManyThreads) {
  mmt::ScopedContext ctx;
  const int64_t live = megamoe_live_object_count();
  const auto verdicts = mmt::on_threads(kThreads, [&](int t) -> std::string {
    std::vector<megamoe_buffer_t> destroyed;
    for (int i = 0; i < 200; ++i) {
      megamoe_buffer_t buf = nullptr;
      if (megamoe_buffer_create(ctx, 64, &buf) != MEGAMOE_SUCCESS) return mmt::last_error();
      uint8_t bytes[64], back[64] = {};
      for (int j = 0; j < 64; ++j) bytes[j] = static_cast<uint8_t>(t * 64 + i + j);
      if (megamoe_buffer_write(buf, 0, bytes, 64, nullptr) != MEGAMOE_SUCCESS ||
          megamoe_buffer_read(buf, 0, back, 64, nullptr) != MEGAMOE_SUCCESS) {
        return mmt::last_error();
      }
      if (std::memcmp(bytes, back, 64) != 0) return "a buffer returned another thread's bytes";
      if (megamoe_buffer_destroy(buf) != MEGAMOE_SUCCESS) return mmt::last_error();
      destroyed.push_back(buf);
      int64_t size = 0;
      const megamoe_buffer_t stale = destroyed[static_cast<size_t>(i / 2)];
      if (megamoe_buffer_get_size(stale, &size) != MEGAMOE_ERROR_INVALID_ARGUMENT) return "a stale handle was accepted";
      if (!mmt::contains(mmt::last_error(), "megamoe_buffer_get_size: argument 'buffer': handle is not a live")) {
        return "unexpected last error: " + mmt::last_error();
      }
    }
    return "";
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(verdicts[static_cast<size_t>(t)], "") << "thread " << t;
  EXPECT_EQ(megamoe_live_object_count(), live);
}

}  // namespace
