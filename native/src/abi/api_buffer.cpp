// Buffers: memory on the context's device, with host copies.
#include <cstdint>

#include "abi/checks.h"
#include "abi/guard.h"
#include "abi/handles.h"

using namespace megamoe;

namespace {

void check_range(const megamoe_buffer& buffer, int64_t offset, int64_t size) {
  if (offset < 0) invalid("offset_bytes", "is ", offset, " (negative)");
  if (size < 0) invalid("size_bytes", "is ", size, " (negative)");
  if (offset > buffer.memory.bytes() || size > buffer.memory.bytes() - offset) {
    invalid("size_bytes", "range [", offset, ", ", offset, " + ", size, ") exceeds the buffer's ", buffer.memory.bytes(),
            " bytes");
  }
}

// The host side of a copy must not be the buffer's own memory (a CPU buffer's, or any pointer into a
// CUDA buffer): the copy would overlap itself, and on the CUDA backend the "host" pointer is a device
// pointer. Checked against the whole allocation, the same way on every backend.
void check_host_outside(const megamoe_buffer& buffer, const void* host, int64_t size) {
  if (host == nullptr) invalid("host", "is NULL");
  const auto host_begin = reinterpret_cast<uintptr_t>(host);
  const auto host_end = host_begin + static_cast<uintptr_t>(size);
  const auto buffer_begin = reinterpret_cast<uintptr_t>(buffer.memory.as<void>());
  const auto buffer_end = buffer_begin + static_cast<uintptr_t>(buffer.memory.bytes());
  if (host_begin < buffer_end && buffer_begin < host_end) {
    invalid("host", "host memory [", host, ", ", host, " + ", size, ") overlaps the buffer's own memory [",
            buffer.memory.as<void>(), ", ", buffer.memory.as<void>(), " + ", buffer.memory.bytes(),
            "); expected memory outside the buffer");
  }
}

}  // namespace

extern "C" {

MEGAMOE_API megamoe_status_t megamoe_buffer_create(megamoe_context_t context, int64_t size_bytes,
                                                   megamoe_buffer_t* out_buffer) {
  return guarded(__func__, [&] {
    auto& ctx = require_handle(context, "context");
    auto& out = require_out(out_buffer, "out_buffer");
    if (size_bytes < 0) invalid("size_bytes", "is ", size_bytes, " (negative)");
    auto buffer = std::make_unique<megamoe_buffer>();
    buffer->memory = BackendBuffer(ctx.backend, size_bytes);
    out = publish(std::move(buffer));
  });
}

MEGAMOE_API megamoe_status_t megamoe_buffer_destroy(megamoe_buffer_t buffer) {
  return guarded(__func__, [&] {
    destroy_handle(buffer, "buffer");
  });
}

MEGAMOE_API megamoe_status_t megamoe_buffer_get_data(megamoe_buffer_t buffer, void** out_data,
                                                     int32_t* out_device_type, int32_t* out_device_id) {
  return guarded(__func__, [&] {
    auto& b = require_handle(buffer, "buffer");
    auto& data = require_out(out_data, "out_data");
    auto& type = require_out(out_device_type, "out_device_type");
    auto& id = require_out(out_device_id, "out_device_id");
    const Device device = b.memory.backend()->device();
    data = b.memory.as<void>();
    type = device.type;
    id = device.id;
  });
}

MEGAMOE_API megamoe_status_t megamoe_buffer_get_size(megamoe_buffer_t buffer, int64_t* out_size_bytes) {
  return guarded(__func__, [&] {
    auto& b = require_handle(buffer, "buffer");
    require_out(out_size_bytes, "out_size_bytes") = b.memory.bytes();
  });
}

MEGAMOE_API megamoe_status_t megamoe_buffer_write(megamoe_buffer_t buffer, int64_t offset_bytes, const void* host,
                                                  int64_t size_bytes, void* stream) {
  return guarded(__func__, [&] {
    auto& b = require_handle(buffer, "buffer");
    check_range(b, offset_bytes, size_bytes);
    if (size_bytes == 0) return;
    check_host_outside(b, host, size_bytes);
    b.memory.backend()->write(b.memory.as<char>() + offset_bytes, host, size_bytes, stream);
  });
}

MEGAMOE_API megamoe_status_t megamoe_buffer_read(megamoe_buffer_t buffer, int64_t offset_bytes, void* host,
                                                 int64_t size_bytes, void* stream) {
  return guarded(__func__, [&] {
    auto& b = require_handle(buffer, "buffer");
    check_range(b, offset_bytes, size_bytes);
    if (size_bytes == 0) return;
    check_host_outside(b, host, size_bytes);
    b.memory.backend()->read(host, b.memory.as<const char>() + offset_bytes, size_bytes, stream);
  });
}

MEGAMOE_API megamoe_status_t megamoe_buffer_fill(megamoe_buffer_t buffer, int64_t offset_bytes, int64_t size_bytes,
                                                 uint8_t value, void* stream) {
  return guarded(__func__, [&] {
    auto& b = require_handle(buffer, "buffer");
    check_range(b, offset_bytes, size_bytes);
    if (size_bytes == 0) return;
    b.memory.backend()->fill(b.memory.as<char>() + offset_bytes, value, size_bytes, stream);
  });
}

}  // extern "C"
