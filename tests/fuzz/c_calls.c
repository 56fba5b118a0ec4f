#include "c_calls.h"

megamoe_status_t fuzz_backend_available(int32_t backend, int32_t device_id) {
  return megamoe_backend_available((megamoe_backend_t)backend, device_id);
}

megamoe_status_t fuzz_context_create(int32_t backend, int32_t device_id, megamoe_context_t* out_context) {
  return megamoe_context_create((megamoe_backend_t)backend, device_id, out_context);
}

const char* fuzz_status_string(int32_t status) { return megamoe_status_string((megamoe_status_t)status); }
