// NCCL, loaded at run time: libmegamoe does not link NCCL (nor need its headers to build), so a
// machine without it still loads the library, and every NCCL entry point then says why it cannot be
// used. NCCL's C API has been stable since 2.x; the few functions used are declared below.
// MEGAMOE_NCCL_LIBRARY names another file than libnccl.so.2 to load.
#include "ep/nccl.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>

#include "core/error.h"

#if defined(MEGAMOE_WITH_CUDA)
#include <cuda_runtime.h>
#endif

namespace megamoe::ep {

#if defined(MEGAMOE_WITH_CUDA)
namespace {

// nccl.h, as far as used here.
using ncclComm_t = void*;
struct ncclUniqueId {
  char internal[kNcclUniqueIdBytes];
};
using ncclResult_t = int;
constexpr ncclResult_t ncclSuccess = 0;
constexpr int ncclUint8 = 1;  // ncclDataType_t

struct Nccl {
  ncclResult_t (*get_unique_id)(ncclUniqueId*);
  ncclResult_t (*comm_init_rank)(ncclComm_t*, int, ncclUniqueId, int);
  ncclResult_t (*comm_init_all)(ncclComm_t*, int, const int*);
  ncclResult_t (*comm_destroy)(ncclComm_t);
  ncclResult_t (*comm_count)(ncclComm_t, int*);
  ncclResult_t (*comm_user_rank)(ncclComm_t, int*);
  ncclResult_t (*comm_cu_device)(ncclComm_t, int*);
  ncclResult_t (*group_start)();
  ncclResult_t (*group_end)();
  ncclResult_t (*send)(const void*, size_t, int, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*recv)(void*, size_t, int, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*all_gather)(const void*, void*, size_t, int, ncclComm_t, cudaStream_t);
  const char* (*error_string)(ncclResult_t);
  const char* (*last_error)(ncclComm_t);
};

// Loaded once per process; the reason is kept when it cannot be.
const Nccl& nccl() {
  static Nccl api{};
  static std::string missing;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* name = std::getenv("MEGAMOE_NCCL_LIBRARY");
    if (name == nullptr || *name == '\0') name = "libnccl.so.2";
    void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* why = dlerror();
      missing = cat("NCCL could not be loaded (", name, ": ", why != nullptr ? why : "unknown error",
                    "); install NCCL 2.x or set MEGAMOE_NCCL_LIBRARY to its libnccl.so.2");
      return;
    }
    // ncclSend / ncclRecv need NCCL 2.7; ncclGetLastError (2.13) only adds detail to messages.
    const auto bind = [&](auto& fn, const char* symbol, bool required = true) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, symbol));
      if (fn == nullptr && required && missing.empty()) {
        missing = cat(name, " has no ", symbol, "; MegaMoe needs NCCL 2.7 or newer");
      }
    };
    bind(api.get_unique_id, "ncclGetUniqueId");
    bind(api.comm_init_rank, "ncclCommInitRank");
    bind(api.comm_init_all, "ncclCommInitAll");
    bind(api.comm_destroy, "ncclCommDestroy");
    bind(api.comm_count, "ncclCommCount");
    bind(api.comm_user_rank, "ncclCommUserRank");
    bind(api.comm_cu_device, "ncclCommCuDevice");
    bind(api.group_start, "ncclGroupStart");
    bind(api.group_end, "ncclGroupEnd");
    bind(api.send, "ncclSend");
    bind(api.recv, "ncclRecv");
    bind(api.all_gather, "ncclAllGather");
    bind(api.error_string, "ncclGetErrorString");
    bind(api.last_error, "ncclGetLastError", false);
  });
  if (!missing.empty()) fail(MEGAMOE_ERROR_BACKEND_UNAVAILABLE, missing);
  return api;
}

void check(ncclResult_t result, const char* what, ncclComm_t comm = nullptr) {
  if (result == ncclSuccess) return;
  const Nccl& api = nccl();
  const char* detail = comm != nullptr && api.last_error != nullptr ? api.last_error(comm) : nullptr;
  fail(MEGAMOE_ERROR_DEVICE, what, " failed: ", api.error_string(result),
       detail != nullptr && *detail != '\0' ? cat(" (", detail, ")") : std::string());
}

// Makes `device` current for the scope (NCCL creates a rank's resources on the current device).
class CurrentDevice {
 public:
  explicit CurrentDevice(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (cudaSetDevice(device) != cudaSuccess) {
      (void)cudaGetLastError();
      fail(MEGAMOE_ERROR_INVALID_ARGUMENT, "argument 'device_id': CUDA device ", device, " cannot be used");
    }
  }
  ~CurrentDevice() {
    if (previous_ >= 0) (void)cudaSetDevice(previous_);
  }
  CurrentDevice(const CurrentDevice&) = delete;
  CurrentDevice& operator=(const CurrentDevice&) = delete;

 private:
  int previous_ = -1;
};

class NcclTransport final : public Transport {
 public:
  NcclTransport(ncclComm_t comm, int32_t rank, int32_t size) : comm_(comm), rank_(rank), size_(size) {}

  int32_t rank() const override { return rank_; }
  int32_t world_size() const override { return size_; }

  // One group of W sends and W receives (the rank's own block included), so NCCL schedules them
  // together and the exchange can be captured in a CUDA graph.
  void all_to_all(const void* send, void* recv, int64_t bytes_per_peer, CollectiveTag /*tag*/, void* stream) override {
    const Nccl& api = nccl();
    const auto s = static_cast<cudaStream_t>(stream);
    const auto bytes = static_cast<size_t>(bytes_per_peer);
    check(api.group_start(), "ncclGroupStart");
    for (int32_t p = 0; p < size_; ++p) {
      const ncclResult_t sent =
          api.send(static_cast<const uint8_t*>(send) + p * bytes_per_peer, bytes, ncclUint8, p, comm_, s);
      const ncclResult_t received = api.recv(static_cast<uint8_t*>(recv) + p * bytes_per_peer, bytes, ncclUint8, p, comm_, s);
      if (sent != ncclSuccess || received != ncclSuccess) {
        (void)api.group_end();
        check(sent != ncclSuccess ? sent : received, "ncclSend/ncclRecv", comm_);
      }
    }
    check(api.group_end(), "ncclGroupEnd (all_to_all)", comm_);
  }

  void all_gather(const void* send, void* recv, int64_t bytes, CollectiveTag /*tag*/, void* stream) override {
    check(nccl().all_gather(send, recv, static_cast<size_t>(bytes), ncclUint8, comm_, static_cast<cudaStream_t>(stream)),
          "ncclAllGather", comm_);
  }

 private:
  ncclComm_t comm_;
  int32_t rank_;
  int32_t size_;
};

}  // namespace

void nccl_get_unique_id(uint8_t* out) {
  ncclUniqueId id{};
  check(nccl().get_unique_id(&id), "ncclGetUniqueId");
  std::memcpy(out, id.internal, sizeof id.internal);
}

void* nccl_comm_init_rank(int32_t world_size, const uint8_t* id, int32_t rank, int32_t device_id) {
  const Nccl& api = nccl();
  ncclUniqueId unique{};
  std::memcpy(unique.internal, id, sizeof unique.internal);
  CurrentDevice current(device_id);
  ncclComm_t comm = nullptr;
  check(api.comm_init_rank(&comm, world_size, unique, rank), "ncclCommInitRank");
  return comm;
}

void nccl_comm_init_all(int32_t count, const int32_t* device_ids, void** out) {
  check(nccl().comm_init_all(reinterpret_cast<ncclComm_t*>(out), count, device_ids), "ncclCommInitAll");
}

void nccl_comm_destroy(void* comm) { check(nccl().comm_destroy(comm), "ncclCommDestroy"); }

std::unique_ptr<Transport> make_nccl_transport(std::shared_ptr<Backend> backend, void* comm) {
  if (backend->kind() != MEGAMOE_BACKEND_CUDA) {
    fail(MEGAMOE_ERROR_BACKEND_UNAVAILABLE,
         "the NCCL transport needs a context on the CUDA backend, and this one runs on the CPU; use "
         "megamoe_ep_comm_create_loopback for CPU ranks");
  }
  const Nccl& api = nccl();
  int count = 0, rank = 0, device = 0;
  check(api.comm_count(comm, &count), "ncclCommCount", comm);
  check(api.comm_user_rank(comm, &rank), "ncclCommUserRank", comm);
  check(api.comm_cu_device(comm, &device), "ncclCommCuDevice", comm);
  if (device != backend->device().id) {
    invalid("nccl_comm", "is a communicator on CUDA device ", device, "; the context runs on device ",
            backend->device().id);
  }
  return std::make_unique<NcclTransport>(comm, rank, count);
}

#else  // built without CUDA

namespace {

[[noreturn]] void unavailable() {
  fail(MEGAMOE_ERROR_BACKEND_UNAVAILABLE, "NCCL needs the CUDA backend, and MegaMoe was built without CUDA (",
       MEGAMOE_CUDA_DISABLED_REASON, "); use megamoe_ep_comm_create_loopback");
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

#endif

}  // namespace megamoe::ep
