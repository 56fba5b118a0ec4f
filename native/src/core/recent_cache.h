// The values of the last N distinct keys, replaced round-robin: for host-side results that are pure
// functions of their key and cost more to compute than a few comparisons (TMA descriptors, kernel
// choices), kept per thread by their users so that lookups need no lock.
#pragma once

#include <array>
#include <cstddef>
#include <utility>

namespace megamoe {

template <typename Key, typename Value, std::size_t N>
class RecentCache {
 public:
  // The cached value of `key`, or make() stored for it.
  template <typename Make>
  const Value& get(const Key& key, Make&& make) {
    for (std::size_t i = 0; i < used_; ++i) {
      if (entries_[i].first == key) return entries_[i].second;
    }
    std::pair<Key, Value>& slot = entries_[next_];
    slot = {key, std::forward<Make>(make)()};
    next_ = (next_ + 1) % N;
    if (used_ < N) ++used_;
    return slot.second;
  }

  std::size_t size() const { return used_; }

 private:
  std::array<std::pair<Key, Value>, N> entries_{};
  std::size_t used_ = 0;
  std::size_t next_ = 0;
};

}  // namespace megamoe
