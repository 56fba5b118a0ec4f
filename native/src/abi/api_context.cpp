// Contexts: backend selection, device information, synchronization.
#include <cstring>

#include "abi/checks.h"
#include "abi/guard.h"
#include "abi/handles.h"

namespace megamoe {
namespace {

// `backend` arrives as an int: a C caller may pass any value, and loading an out-of-range value as
// the enum type would be undefined behaviour.
std::shared_ptr<Backend> make_backend(int32_t backend, int32_t device_id) {
  if (device_id < 0) invalid("device_id", "is ", device_id, " (negative)");
  switch (backend) {
    case MEGAMOE_BACKEND_CPU:
      if (device_id != 0) invalid("device_id", "is ", device_id, "; the CPU backend has only device 0");
      return make_cpu_backend();
    case MEGAMOE_BACKEND_CUDA:
      return make_cuda_backend(device_id);
    case MEGAMOE_BACKEND_BEST:
      try {
        return make_cuda_backend(device_id);
      } catch (const Error& e) {
        if (e.status() != MEGAMOE_ERROR_BACKEND_UNAVAILABLE) throw;
        return make_cpu_backend();
      }
  }
  invalid("backend", "value ", backend, " is not a megamoe_backend_t");
}

}  // namespace
}  // namespace megamoe

using namespace megamoe;

extern "C" {

MEGAMOE_API megamoe_status_t megamoe_backend_available(megamoe_backend_t backend, int32_t device_id) {
  int32_t value;
  static_assert(sizeof value == sizeof backend, "megamoe_backend_t is an int");
  std::memcpy(&value, &backend, sizeof value);
  return guarded(__func__, [&] {
    if (device_id < 0) invalid("device_id", "is ", device_id, " (negative)");
    switch (value) {
      case MEGAMOE_BACKEND_CPU:
        if (device_id != 0) invalid("device_id", "is ", device_id, "; the CPU backend has only device 0");
        return;
      case MEGAMOE_BACKEND_BEST:
        return;  // the CPU is always there
      case MEGAMOE_BACKEND_CUDA:
        check_cuda_available(device_id);
        return;
    }
    invalid("backend", "value ", value, " is not a megamoe_backend_t");
  });
}

MEGAMOE_API megamoe_status_t megamoe_context_create(megamoe_backend_t backend, int32_t device_id,
                                                    megamoe_context_t* out_context) {
  return guarded(__func__, [&] {
    auto& out = require_out(out_context, "out_context");
    int32_t value;
    std::memcpy(&value, &backend, sizeof value);
    auto context = std::make_unique<megamoe_context>();
    context->backend = make_backend(value, device_id);
    out = publish(std::move(context));
  });
}

MEGAMOE_API megamoe_status_t megamoe_context_destroy(megamoe_context_t context) {
  return guarded(__func__, [&] {
    destroy_handle(context, "context");
  });
}

MEGAMOE_API megamoe_status_t megamoe_context_get_backend(megamoe_context_t context, megamoe_backend_t* out_backend) {
  return guarded(__func__, [&] {
    auto& ctx = require_handle(context, "context");
    require_out(out_backend, "out_backend") = ctx.backend->kind();
  });
}

MEGAMOE_API megamoe_status_t megamoe_context_set_num_threads(megamoe_context_t context, int32_t num_threads) {
  return guarded(__func__, [&] {
    auto& ctx = require_handle(context, "context");
    if (num_threads < 0 || num_threads > kMaxThreads) {
      invalid("num_threads", "is ", num_threads, "; expected 0 (one per hardware thread) to ", kMaxThreads);
    }
    ctx.backend->set_num_threads(num_threads);
  });
}

MEGAMOE_API megamoe_status_t megamoe_context_get_device_info(megamoe_context_t context,
                                                             megamoe_device_info_t* out_info) {
  return guarded(__func__, [&] {
    auto& ctx = require_handle(context, "context");
    auto& out = require_out(out_info, "out_info");
    if (out.struct_size != sizeof(megamoe_device_info_t)) {
      invalid("out_info", "struct_size is ", out.struct_size, "; expected sizeof(megamoe_device_info_t) = ",
              sizeof(megamoe_device_info_t), " (set it before the call; a mismatch means mismatched headers)");
    }
    megamoe_device_info_t info;
    std::memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    ctx.backend->device_info(info);
    out = info;
  });
}

MEGAMOE_API megamoe_status_t megamoe_context_synchronize(megamoe_context_t context, void* stream) {
  return guarded(__func__, [&] { require_handle(context, "context").backend->synchronize(stream); });
}

}  // extern "C"
