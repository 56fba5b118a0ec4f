// NCCL is not wired up yet: every entry point says why it cannot be used. The GPU part of issue 13
// replaces this file with one that loads libnccl.so.2.
#include "ep/nccl.h"

#include "core/error.h"

namespace megamoe::ep {

namespace {

[[noreturn]] void unavailable() {
#if defined(MEGAMOE_WITH_CUDA)
  fail(MEGAMOE_ERROR_BACKEND_UNAVAILABLE,
       "the NCCL transport is not available in this build yet; use megamoe_ep_comm_create_loopback");
#else
  fail(MEGAMOE_ERROR_BACKEND_UNAVAILABLE, "NCCL needs the CUDA backend, and MegaMoe was built without CUDA (",
       MEGAMOE_CUDA_DISABLED_REASON, "); use megamoe_ep_comm_create_loopback");
#endif
}

}  // namespace

void nccl_get_unique_id(uint8_t* /*out*/) { unavailable(); }

void* nccl_comm_init_rank(int32_t /*world_size*/, const uint8_t* /*id*/, int32_t /*rank*/, int32_t /*device_id*/) {
  unavailable();
}

void nccl_comm_init_all(int32_t /*count*/, const int32_t* /*device_ids*/, void** /*out*/) { unavailable(); }

void nccl_comm_destroy(void* /*comm*/) { unavailable(); }

std::unique_ptr<Transport> make_nccl_transport(std::shared_ptr<Backend> backend, void* /*comm*/) {
  if (backend->kind() != MEGAMOE_BACKEND_CUDA) {
    fail(MEGAMOE_ERROR_BACKEND_UNAVAILABLE,
         "the NCCL transport needs a context on the CUDA backend, and this one runs on the CPU; use "
         "megamoe_ep_comm_create_loopback for CPU ranks");
  }
  unavailable();
}

}  // namespace megamoe::ep
