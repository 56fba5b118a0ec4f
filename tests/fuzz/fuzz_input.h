// Reads a fuzz input as a stream of choices. Past the end every read returns 0, and choice 0 is
// always the well-formed one, so a short input (or an all-zero seed) describes valid calls and the
// fuzzer's mutations move away from them one decision at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>

namespace fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool exhausted() const { return pos_ >= size_; }

  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }

  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | byte();
    return v;
  }

  uint64_t u64() { return (uint64_t{u32()} << 32) | u32(); }

  bool flag() { return (byte() & 1) != 0; }

  // One of `values`, the first for choice 0.
  template <typename T>
  T pick(std::initializer_list<T> values) {
    const size_t i = byte() % values.size();
    return *(values.begin() + i);
  }

  // An integer in [lo, hi] (hi - lo < 256), lo for choice 0.
  int64_t small(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(byte()) % (hi - lo + 1); }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace fuzz
