// Small host helpers of the CUDA backend: error translation, device guards, stream casts.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <utility>

#include "core/error.h"

namespace megamoe::cuda {

// Turns a CUDA runtime error into Error(MEGAMOE_ERROR_DEVICE, "<name>: <text> in <where>")
// (MEGAMOE_ERROR_OUT_OF_MEMORY for allocation failures).
[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* where) {
  // Clear a non-sticky error so the next call on this thread starts clean.
  (void)cudaGetLastError();
  const megamoe_status_t code =
      status == cudaErrorMemoryAllocation ? MEGAMOE_ERROR_OUT_OF_MEMORY : MEGAMOE_ERROR_DEVICE;
  throw Error(code, cat(cudaGetErrorName(status), ": ", cudaGetErrorString(status), " in ", where));
}

inline void check(cudaError_t status, const char* where) {
  if (status != cudaSuccess) throw_cuda_error(status, where);
}

// After a kernel launch: launch configuration errors surface here.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// Makes `device` current for the scope and restores the caller's device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int current = -1;
    if (cudaGetDevice(&current) == cudaSuccess && current != previous_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// What the launchers need to know of the backend's device.
struct DeviceLimits {
  int device = 0;
  int num_sms = 132;
};

// Runs `set` once per device (up to 64 devices; beyond that every time): for per-kernel attributes
// such as the dynamic shared memory limit.
template <typename Set>
void once_per_device(std::atomic<uint64_t>& done, int device, Set&& set) {
  const uint64_t bit = device >= 0 && device < 64 ? (uint64_t{1} << device) : 0;
  if (bit != 0 && (done.load(std::memory_order_acquire) & bit) != 0) return;
  set();
  done.fetch_or(bit, std::memory_order_acq_rel);
}

// Device memory owned by a plan or layer (allocated at creation, never during a call).
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(int device, int64_t bytes) : device_(device), bytes_(bytes) {
    DeviceGuard guard(device);
    check(cudaMalloc(&data_, static_cast<size_t>(bytes > 0 ? bytes : 1)), "cudaMalloc (workspace)");
  }
  ~DeviceArray() { reset(); }
  DeviceArray(DeviceArray&& other) noexcept { *this = std::move(other); }
  DeviceArray& operator=(DeviceArray&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = other.data_, device_ = other.device_, bytes_ = other.bytes_;
      other.data_ = nullptr, other.bytes_ = 0;
    }
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  template <typename T = void>
  T* get() const {
    return static_cast<T*>(data_);
  }
  int64_t bytes() const { return bytes_; }

 private:
  void reset() noexcept {
    if (data_ == nullptr) return;
    int previous = 0;
    const bool switch_device = cudaGetDevice(&previous) == cudaSuccess && previous != device_;
    if (switch_device) (void)cudaSetDevice(device_);
    (void)cudaFree(data_);
    (void)cudaGetLastError();
    if (switch_device) (void)cudaSetDevice(previous);
    data_ = nullptr;
  }
  void* data_ = nullptr;
  int device_ = 0;
  int64_t bytes_ = 0;
};

}  // namespace megamoe::cuda
