// Integer helpers shared by host code and kernels.
#pragma once

#include "core/host_device.h"

namespace megamoe {

// ceil(a / b) for a >= 0, b > 0.
template <typename T>
MEGAMOE_HD constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

}  // namespace megamoe
