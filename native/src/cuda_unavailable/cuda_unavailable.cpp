// Linked instead of src/cuda when the library is built without the CUDA backend.
#include "core/backend.h"
#include "core/error.h"

namespace megamoe {

void check_cuda_available(int32_t /*device_id*/) {
  fail(MEGAMOE_ERROR_BACKEND_UNAVAILABLE, "the CUDA backend is unavailable: MegaMoe was built without CUDA (",
       MEGAMOE_CUDA_DISABLED_REASON, "); rebuild with nvcc >= 12.3 and CUTLASS (-DMEGAMOE_CUDA=ON)");
}

std::shared_ptr<Backend> make_cuda_backend(int32_t device_id) {
  check_cuda_available(device_id);
  return nullptr;
}

}  // namespace megamoe
