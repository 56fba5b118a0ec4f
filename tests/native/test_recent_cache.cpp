// core/recent_cache.h: the per-thread caches of TMA descriptors and GEMM variant choices.
#include <gtest/gtest.h>

#include <string>

#include "core/recent_cache.h"

namespace {

TEST(RecentCache, ComputesOncePerKeyWhileCached) {
  megamoe::RecentCache<int, std::string, 3> cache;
  int calls = 0;
  const auto make = [&](int key) {
    return [&, key] {
      ++calls;
      return "value " + std::to_string(key);
    };
  };
  EXPECT_EQ(cache.get(1, make(1)), "value 1");
  EXPECT_EQ(cache.get(1, make(1)), "value 1");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(cache.get(2, make(2)), "value 2");
  EXPECT_EQ(cache.get(3, make(3)), "value 3");
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(calls, 3);
  // A fourth key replaces the oldest entry (1); 2 and 3 stay.
  EXPECT_EQ(cache.get(4, make(4)), "value 4");
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.get(2, make(2)), "value 2");
  EXPECT_EQ(cache.get(3, make(3)), "value 3");
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(cache.get(1, make(1)), "value 1");
  EXPECT_EQ(calls, 5);
}

}  // namespace
