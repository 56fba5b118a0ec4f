// 64-byte aligned host memory: the CPU backend's buffers, the weights a layer owns and its
// workspace. Cache-line alignment keeps the FP8 rows and packed panels on full lines.
#pragma once

#include <cstddef>
#include <cstdint>

namespace megamoe::cpu {

constexpr size_t kHostAlignment = 64;

// Throws Error(MEGAMOE_ERROR_OUT_OF_MEMORY) naming the size on failure. bytes may be 0.
void* aligned_allocate(int64_t bytes);
void aligned_free(void* data) noexcept;

// Owning, move-only, uninitialized: the contents are always written before being read.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(int64_t bytes) : data_(aligned_allocate(bytes)), bytes_(bytes) {}
  AlignedBuffer(AlignedBuffer&& other) noexcept : data_(other.data_), bytes_(other.bytes_) {
    other.data_ = nullptr;
    other.bytes_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    if (this != &other) {
      aligned_free(data_);
      data_ = other.data_;
      bytes_ = other.bytes_;
      other.data_ = nullptr;
      other.bytes_ = 0;
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { aligned_free(data_); }

  int64_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  int64_t bytes_ = 0;
};

}  // namespace megamoe::cpu
