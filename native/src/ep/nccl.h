// NCCL, the transport between GPUs (docs/EP.md): communicators for the caller (ncclCommInitAll /
// ncclCommInitRank, as an opaque ncclComm_t) and the transport over one. The library never creates
// processes; libnccl.so.2 is loaded on first use. Each function throws
// Error(MEGAMOE_ERROR_BACKEND_UNAVAILABLE) with the reason when NCCL cannot be used here.
#pragma once

#include <cstdint>
#include <memory>

#include "core/backend.h"
#include "ep/transport.h"

namespace megamoe::ep {

constexpr int64_t kNcclUniqueIdBytes = 128;  // sizeof(ncclUniqueId)

void nccl_get_unique_id(uint8_t* out);
// `id` has kNcclUniqueIdBytes bytes.
void* nccl_comm_init_rank(int32_t world_size, const uint8_t* id, int32_t rank, int32_t device_id);
// out[i] = the communicator of rank i, on device_ids[i].
void nccl_comm_init_all(int32_t count, const int32_t* device_ids, void** out);
void nccl_comm_destroy(void* comm);
// The transport over `comm` for a rank on `backend` (a CUDA backend on the communicator's device).
std::unique_ptr<Transport> make_nccl_transport(std::shared_ptr<Backend> backend, void* comm);

}  // namespace megamoe::ep
