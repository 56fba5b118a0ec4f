// CPU tests of the routing pieces the CUDA backend shares with the host (core/routing.h): the bucket
// rule (out-of-range indices are dropped) and the worker ranges of the device's routing kernel. A
// simulation of that kernel's two passes (count per worker range, then place in slot order) must give
// group_slots_by_expert's stable order for any number of workers.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/routing.h"

namespace {

TEST(Routing, BucketDropsEverythingOutsideTheExperts) {
  EXPECT_EQ(megamoe::routing_bucket(0, 8), 0);
  EXPECT_EQ(megamoe::routing_bucket(7, 8), 7);
  EXPECT_EQ(megamoe::routing_bucket(8, 8), 8);
  EXPECT_EQ(megamoe::routing_bucket(-1, 8), 8);
  EXPECT_EQ(megamoe::routing_bucket(-7, 8), 8);
  EXPECT_EQ(megamoe::routing_bucket(int64_t{1} << 40, 8), 8);
}

TEST(Routing, WorkerRangesTileTheSlots) {
  for (int64_t slots : {0, 1, 31, 32, 33, 1000, 32768}) {
    for (uint32_t parts : {1u, 7u, 32u}) {
      int64_t next = 0;
      for (uint32_t w = 0; w < parts; ++w) {
        const auto r = megamoe::routing_worker_range(slots, parts, w);
        ASSERT_EQ(r.begin, next) << slots << " slots, worker " << w;
        ASSERT_LE(r.begin, r.end);
        next = r.end;
      }
      EXPECT_EQ(next, slots);
    }
  }
}

// The device algorithm (cuda/routing.cuh build_routing) in plain C++: per worker counts, prefix over
// (bucket, worker), then each worker places its range in order.
std::vector<int64_t> device_order(const std::vector<int64_t>& idx, int32_t experts, uint32_t workers,
                                  std::vector<int64_t>& offsets) {
  const int64_t slots = static_cast<int64_t>(idx.size());
  const int32_t buckets = experts + 1;
  std::vector<int64_t> cursor(static_cast<size_t>(workers) * buckets, 0);
  for (uint32_t w = 0; w < workers; ++w) {
    const auto r = megamoe::routing_worker_range(slots, workers, w);
    for (int64_t s = r.begin; s < r.end; ++s) ++cursor[w * buckets + megamoe::routing_bucket(idx[s], experts)];
  }
  offsets.assign(static_cast<size_t>(buckets) + 1, 0);
  for (int32_t b = 0; b < buckets; ++b) {
    int64_t run = 0;
    for (uint32_t w = 0; w < workers; ++w) {
      const int64_t c = cursor[w * buckets + b];
      cursor[w * buckets + b] = run;
      run += c;
    }
    offsets[b + 1] = offsets[b] + run;
  }
  std::vector<int64_t> order(static_cast<size_t>(slots));
  for (uint32_t w = 0; w < workers; ++w) {
    const auto r = megamoe::routing_worker_range(slots, workers, w);
    for (int64_t s = r.begin; s < r.end; ++s) {
      const int32_t b = megamoe::routing_bucket(idx[s], experts);
      order[offsets[b] + cursor[w * buckets + b]++] = s;
    }
  }
  return order;
}

TEST(Routing, DeviceOrderIsTheStableCountingSort) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 30; ++trial) {
    const int32_t experts = 1 + static_cast<int32_t>(rng() % 64);
    const int64_t tokens = static_cast<int64_t>(rng() % 300), top_k = 1 + static_cast<int64_t>(rng() % 8);
    std::vector<int64_t> idx(static_cast<size_t>(tokens * top_k));
    for (auto& v : idx) v = rng() % 5 == 0 ? -1 : static_cast<int64_t>(rng() % static_cast<uint64_t>(experts));
    std::vector<int64_t> off(static_cast<size_t>(experts) + 1), order(idx.size()), position(idx.size());
    megamoe::group_slots_by_expert(
        tokens, static_cast<int32_t>(top_k), experts, [&](int64_t s) { return idx[static_cast<size_t>(s)]; }, off.data(),
        order.data(), position.data());
    for (const uint32_t workers : {1u, 5u, 32u}) {
      std::vector<int64_t> dev_off;
      const auto dev = device_order(idx, experts, workers, dev_off);
      for (int32_t e = 0; e <= experts; ++e) ASSERT_EQ(dev_off[e], off[e]) << "expert " << e;
      for (int64_t p = 0; p < off[experts]; ++p) ASSERT_EQ(dev[p], order[p]) << "grouped row " << p;
      // Dropped slots follow the experts, in slot order.
      for (int64_t p = off[experts] + 1; p < static_cast<int64_t>(idx.size()); ++p) ASSERT_LT(dev[p - 1], dev[p]);
    }
  }
}

}  // namespace
