// A validated tensor: the C ABI layer checked dtype, rank, shape, density, alignment and device
// before a backend sees it, so backends index it as dense row-major without further checks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "megamoe/megamoe.h"

namespace megamoe {

struct Device {
  megamoe_device_type_t type = MEGAMOE_DEVICE_CPU;
  int32_t id = 0;
};

inline int64_t dtype_size(megamoe_dtype_t dtype) {
  switch (dtype) {
    case MEGAMOE_DTYPE_FP8_E4M3: return 1;
    case MEGAMOE_DTYPE_BF16: return 2;
    case MEGAMOE_DTYPE_FP32: return 4;
    case MEGAMOE_DTYPE_INT32: return 4;
    case MEGAMOE_DTYPE_INT64: return 8;
  }
  return 0;
}

const char* dtype_name(megamoe_dtype_t dtype);

struct Tensor {
  void* data = nullptr;
  megamoe_dtype_t dtype = MEGAMOE_DTYPE_FP32;
  int32_t rank = 0;
  int64_t shape[MEGAMOE_MAX_RANK] = {};

  int64_t dim(int32_t i) const { return shape[i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int32_t i = 0; i < rank; ++i) n *= shape[i];
    return n;
  }
  int64_t bytes() const { return numel() * dtype_size(dtype); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

// A dense view of memory the library owns (workspace, staging), shaped as given.
inline Tensor tensor_view(void* data, megamoe_dtype_t dtype, std::initializer_list<int64_t> shape) {
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.rank = static_cast<int32_t>(shape.size());
  std::copy(shape.begin(), shape.end(), t.shape);
  return t;
}

}  // namespace megamoe
