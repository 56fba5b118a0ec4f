// Status strings, the thread-local last-error message and the live-object count.
#include <cstring>
#include <string>

#include "abi/guard.h"
#include "core/live_objects.h"

namespace megamoe {
namespace {
thread_local std::string t_last_error;
thread_local bool t_last_error_lost = false;  // the last message could not be stored
}  // namespace

void set_last_error(const char* function, const char* detail) noexcept {
  try {
    t_last_error.assign(function);
    t_last_error.append(": ");
    t_last_error.append(detail);
    t_last_error_lost = false;
  } catch (...) {
    t_last_error_lost = true;
  }
}

}  // namespace megamoe

extern "C" {

MEGAMOE_API const char* megamoe_status_string(megamoe_status_t status) {
  // Compared as an int: any value may arrive from C, and an out-of-range enum load is undefined.
  int32_t value;
  std::memcpy(&value, &status, sizeof value);
  switch (value) {
    case MEGAMOE_SUCCESS: return "MEGAMOE_SUCCESS";
    case MEGAMOE_ERROR_INVALID_ARGUMENT: return "MEGAMOE_ERROR_INVALID_ARGUMENT";
    case MEGAMOE_ERROR_UNSUPPORTED: return "MEGAMOE_ERROR_UNSUPPORTED";
    case MEGAMOE_ERROR_BACKEND_UNAVAILABLE: return "MEGAMOE_ERROR_BACKEND_UNAVAILABLE";
    case MEGAMOE_ERROR_OUT_OF_MEMORY: return "MEGAMOE_ERROR_OUT_OF_MEMORY";
    case MEGAMOE_ERROR_DEVICE: return "MEGAMOE_ERROR_DEVICE";
    case MEGAMOE_ERROR_CANCELLED: return "MEGAMOE_ERROR_CANCELLED";
    case MEGAMOE_ERROR_INTERNAL: return "MEGAMOE_ERROR_INTERNAL";
  }
  return "unknown status";
}

MEGAMOE_API const char* megamoe_last_error_message(void) {
  if (megamoe::t_last_error_lost) return "the error message could not be stored (out of host memory)";
  return megamoe::t_last_error.c_str();
}

MEGAMOE_API int64_t megamoe_live_object_count(void) {
  return megamoe::live_object_counter().load(std::memory_order_relaxed);
}

}  // extern "C"
