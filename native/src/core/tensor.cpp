#include "core/tensor.h"

namespace megamoe {

const char* dtype_name(megamoe_dtype_t dtype) {
  switch (dtype) {
    case MEGAMOE_DTYPE_FP8_E4M3: return "FP8_E4M3";
    case MEGAMOE_DTYPE_BF16: return "BF16";
    case MEGAMOE_DTYPE_FP32: return "FP32";
    case MEGAMOE_DTYPE_INT32: return "INT32";
    case MEGAMOE_DTYPE_INT64: return "INT64";
  }
  return "unknown";
}

}  // namespace megamoe
