/* The entry points that take an enum, called from C with any int. A C caller may pass any value
 * there; C++ may not even hold such a value in an enum variable (clang's UBSan reports the load),
 * so the fuzz targets pass arbitrary values through these. */
#ifndef MEGAMOE_FUZZ_C_CALLS_H_
#define MEGAMOE_FUZZ_C_CALLS_H_

#include "megamoe/megamoe.h"

#ifdef __cplusplus
extern "C" {
#endif

megamoe_status_t fuzz_backend_available(int32_t backend, int32_t device_id);
megamoe_status_t fuzz_context_create(int32_t backend, int32_t device_id, megamoe_context_t* out_context);
const char* fuzz_status_string(int32_t status);

#ifdef __cplusplus
}
#endif

#endif
