// Small host helpers of the CUDA backend: error translation, device guards, stream casts.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

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

}  // namespace megamoe::cuda
