// Memory of a backend (device memory on CUDA) with one owner: a megamoe_buffer_t, or an EP object's
// exchange regions and workspace. Zero bytes allocate nothing (data() is then NULL).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include "core/backend.h"

namespace megamoe {

class BackendBuffer {
 public:
  BackendBuffer() = default;
  BackendBuffer(std::shared_ptr<Backend> backend, int64_t bytes)
      : backend_(std::move(backend)), data_(bytes > 0 ? backend_->allocate(bytes) : nullptr), bytes_(bytes) {}
  BackendBuffer(BackendBuffer&& other) noexcept
      : backend_(std::move(other.backend_)), data_(std::exchange(other.data_, nullptr)), bytes_(other.bytes_) {}
  BackendBuffer& operator=(BackendBuffer&& other) noexcept {
    std::swap(backend_, other.backend_);
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  BackendBuffer(const BackendBuffer&) = delete;
  BackendBuffer& operator=(const BackendBuffer&) = delete;
  ~BackendBuffer() {
    if (data_ != nullptr) backend_->deallocate(data_);
  }

  const std::shared_ptr<Backend>& backend() const { return backend_; }
  int64_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  std::shared_ptr<Backend> backend_;
  void* data_ = nullptr;
  int64_t bytes_ = 0;
};

}  // namespace megamoe
