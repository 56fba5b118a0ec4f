// Fuzz target: handles and the small entry points. An input is a sequence of operations on a few
// contexts and buffers: create and destroy them in any order (a context destroyed while its buffers
// live), query them, copy to and from buffers with fuzzed offsets and sizes, pass handles of the
// wrong kind and handles already destroyed, and call the version, status and struct-size functions
// with arbitrary values.
#include <array>
#include <cstring>
#include <limits>
#include <string>

#include "c_calls.h"
#include "harness.h"

using namespace fuzz;

namespace {

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();

// The objects of one input; everything still alive is destroyed at the end.
struct World {
  std::array<megamoe_context_t, 3> contexts{};
  std::array<megamoe_buffer_t, 4> buffers{};
  std::array<int64_t, 4> sizes{};
  // The last handles destroyed: passing them again must be rejected, never a use after free.
  megamoe_context_t stale_context = nullptr;
  megamoe_buffer_t stale_buffer = nullptr;

  void retire_context(size_t slot) {
    if (megamoe_context_destroy(contexts[slot]) != MEGAMOE_SUCCESS) fail("megamoe_context_destroy failed on a live context");
    if (contexts[slot] != nullptr) stale_context = contexts[slot];
    contexts[slot] = nullptr;
  }
  void retire_buffer(size_t slot) {
    if (megamoe_buffer_destroy(buffers[slot]) != MEGAMOE_SUCCESS) fail("megamoe_buffer_destroy failed on a live buffer");
    if (buffers[slot] != nullptr) stale_buffer = buffers[slot];
    buffers[slot] = nullptr;
  }

  ~World() {
    for (megamoe_buffer_t b : buffers) {
      if (megamoe_buffer_destroy(b) != MEGAMOE_SUCCESS) fail("megamoe_buffer_destroy failed on a live buffer");
    }
    for (megamoe_context_t c : contexts) {
      if (megamoe_context_destroy(c) != MEGAMOE_SUCCESS) fail("megamoe_context_destroy failed on a live context");
    }
  }
};

// A slot's context, or (sometimes) a handle of another kind or a destroyed one, which must be rejected.
megamoe_context_t context_in(FuzzInput& in, World& w, bool& live) {
  const uint8_t r = in.byte();
  const megamoe_context_t c = w.contexts[r % w.contexts.size()];
  live = c != nullptr;
  if (r >= 252) {
    live = false;
    return reinterpret_cast<megamoe_context_t>(w.buffers[r % w.buffers.size()]);
  }
  if (r >= 248) {
    live = false;
    return w.stale_context;
  }
  return c;
}

size_t buffer_slot(FuzzInput& in, World& w) { return in.byte() % w.buffers.size(); }

void create_context(FuzzInput& in, World& w) {
  const size_t slot = in.byte() % w.contexts.size();
  const int32_t backend = in.pick<int32_t>({MEGAMOE_BACKEND_CPU, MEGAMOE_BACKEND_BEST, MEGAMOE_BACKEND_CUDA, 3, -1});
  const int32_t device = in.pick<int32_t>({0, 1, -1, std::numeric_limits<int32_t>::min()});
  const bool null_out = in.byte() % 16 == 15;
  megamoe_context_t c = nullptr;
  Call call(in, "megamoe_context_create");
  const bool valid = backend == MEGAMOE_BACKEND_CPU && device == 0 && !null_out;
  const megamoe_status_t s = call.run([&] { return fuzz_context_create(backend, device, null_out ? nullptr : &c); }, valid);
  if (s != MEGAMOE_SUCCESS) {
    if (c != nullptr) fail("megamoe_context_create failed but wrote out_context");
    return;
  }
  // One worker: the fuzzer runs one input at a time, and thread start-up would dominate it.
  if (megamoe_context_set_num_threads(c, 1) != MEGAMOE_SUCCESS) fail("set_num_threads(1) failed");
  w.retire_context(slot);
  w.contexts[slot] = c;
}

void context_queries(FuzzInput& in, World& w) {
  bool live = false;
  megamoe_context_t c = context_in(in, w, live);
  switch (in.byte() % 5) {
    case 0: {
      const int32_t threads = in.pick<int32_t>({1, 2, 0, -1, 4097, std::numeric_limits<int32_t>::min()});
      Call call(in, "megamoe_context_set_num_threads");
      call.run([&] { return megamoe_context_set_num_threads(c, threads); }, live && threads >= 0 && threads <= 2);
      break;
    }
    case 1: {
      const bool null_out = in.flag();
      megamoe_backend_t backend = MEGAMOE_BACKEND_BEST;
      Call call(in, "megamoe_context_get_backend");
      if (call.run([&] { return megamoe_context_get_backend(c, null_out ? nullptr : &backend); }, live && !null_out) ==
              MEGAMOE_SUCCESS &&
          backend == MEGAMOE_BACKEND_BEST) {
        fail("megamoe_context_get_backend returned MEGAMOE_BACKEND_BEST");
      }
      break;
    }
    case 2: {
      megamoe_device_info_t info;
      std::memset(&info, 0x5a, sizeof info);
      const auto size = static_cast<uint32_t>(sizeof info);
      info.struct_size = in.pick<uint32_t>({size, 0u, size - 4u, size + 4u});
      const bool null_out = in.byte() % 8 == 7;
      Call call(in, "megamoe_context_get_device_info");
      const bool valid = live && !null_out && info.struct_size == size;
      if (call.run([&] { return megamoe_context_get_device_info(c, null_out ? nullptr : &info); }, valid) ==
              MEGAMOE_SUCCESS &&
          std::memchr(info.name, '\0', sizeof info.name) == nullptr) {
        fail("megamoe_device_info_t.name is not NUL-terminated");
      }
      break;
    }
    case 3: {
      void* stream = stream_argument(in);
      Call call(in, "megamoe_context_synchronize");
      call.run([&] { return megamoe_context_synchronize(c, stream); }, live);
      break;
    }
    default: {
      const size_t slot = in.byte() % w.contexts.size();
      const megamoe_context_t doomed = w.contexts[slot];
      Call call(in, "megamoe_context_destroy");  // live buffers keep the backend alive
      call.run([&] { return megamoe_context_destroy(doomed); }, true);
      if (doomed != nullptr) w.stale_context = doomed;
      w.contexts[slot] = nullptr;
      break;
    }
  }
}

void create_buffer(FuzzInput& in, World& w) {
  bool live = false;
  megamoe_context_t c = context_in(in, w, live);
  const size_t slot = buffer_slot(in, w);
  // Sizes the allocator must refuse are far above any memory (and above ASan's allocation limit).
  const int64_t size = in.pick<int64_t>({64, 0, 1, 4096, -1, kI64Min, kI64Max, int64_t{1} << 62});
  const bool null_out = in.byte() % 16 == 15;
  megamoe_buffer_t b = nullptr;
  Call call(in, "megamoe_buffer_create");
  const megamoe_status_t s = call.run([&] { return megamoe_buffer_create(c, size, null_out ? nullptr : &b); },
                                      live && size >= 0 && size <= 4096 && !null_out);
  if (s != MEGAMOE_SUCCESS) {
    if (b != nullptr) fail("megamoe_buffer_create failed but wrote out_buffer");
    return;
  }
  w.retire_buffer(slot);
  w.buffers[slot] = b;
  w.sizes[slot] = size;
}

int64_t read_offset(FuzzInput& in, int64_t size) {
  return in.pick<int64_t>({0, 16, size, size - 1, size + 1, -1, kI64Max, kI64Min, 1});
}

void buffer_ops(FuzzInput& in, World& w) {
  const size_t slot = buffer_slot(in, w);
  const uint8_t r = in.byte();
  // A wrong-kind handle (a context) or a destroyed buffer now and then; it must be rejected.
  megamoe_buffer_t b = r >= 250 ? reinterpret_cast<megamoe_buffer_t>(w.contexts[0])
                       : r >= 245 ? w.stale_buffer
                                  : w.buffers[slot];
  const bool live = r < 245 && b != nullptr;
  const int64_t capacity = live ? w.sizes[slot] : 0;
  const int64_t offset = read_offset(in, capacity);
  const int64_t size = read_offset(in, capacity);
  const bool range_ok = offset >= 0 && size >= 0 && offset <= capacity && size <= capacity - offset;
  void* stream = stream_argument(in);
  switch (r % 5) {
    case 0: {
      Call call(in, "megamoe_buffer_write");
      void* host = call.bytes(size, Role::kInput);
      const bool valid = live && range_ok && (host != nullptr || size == 0);
      const megamoe_status_t s = call.run([&] { return megamoe_buffer_write(b, offset, host, size, stream); }, valid);
      if (s == MEGAMOE_SUCCESS && size > 0) {  // it must read back
        std::vector<unsigned char> back(static_cast<size_t>(size));
        if (megamoe_buffer_read(b, offset, back.data(), size, nullptr) != MEGAMOE_SUCCESS ||
            std::memcmp(back.data(), host, back.size()) != 0) {
          fail("megamoe_buffer_read does not return what megamoe_buffer_write wrote");
        }
      }
      break;
    }
    case 1: {
      Call call(in, "megamoe_buffer_read");
      void* host = call.bytes(size, Role::kOutput);
      const bool valid = live && range_ok && (host != nullptr || size == 0);
      call.run([&] { return megamoe_buffer_read(b, offset, host, size, stream); }, valid);
      break;
    }
    case 2: {
      const auto value = static_cast<uint8_t>(in.byte());
      Call call(in, "megamoe_buffer_fill");
      call.run([&] { return megamoe_buffer_fill(b, offset, size, value, stream); }, live && range_ok);
      break;
    }
    case 3: {
      void* data = reinterpret_cast<void*>(uintptr_t{1});
      int32_t type = -7, id = -7;
      const uint8_t nulls = in.byte() % 8;  // which outputs are NULL
      Call call(in, "megamoe_buffer_get_data");
      const megamoe_status_t s = call.run(
          [&] {
            return megamoe_buffer_get_data(b, (nulls & 1) ? nullptr : &data, (nulls & 2) ? nullptr : &type,
                                           (nulls & 4) ? nullptr : &id);
          },
          live && nulls == 0);
      if (s == MEGAMOE_SUCCESS && (type != MEGAMOE_DEVICE_CPU || id != 0 || (capacity > 0 && data == nullptr))) {
        fail("megamoe_buffer_get_data describes a CPU buffer wrongly");
      }
      break;
    }
    default: {
      int64_t got = -7;
      const bool null_out = in.flag();
      Call call(in, "megamoe_buffer_get_size");
      const megamoe_status_t s =
          call.run([&] { return megamoe_buffer_get_size(b, null_out ? nullptr : &got); }, live && !null_out);
      if (s == MEGAMOE_SUCCESS && got != capacity) fail("megamoe_buffer_get_size is wrong");
      break;
    }
  }
}

void destroy_buffer(FuzzInput& in, World& w) {
  const size_t slot = buffer_slot(in, w);
  const megamoe_buffer_t doomed = w.buffers[slot];
  Call call(in, "megamoe_buffer_destroy");
  call.run([&] { return megamoe_buffer_destroy(doomed); }, true);
  if (doomed != nullptr) w.stale_buffer = doomed;
  w.buffers[slot] = nullptr;
}

// Functions that take plain values: any value must give a defined answer.
void plain_values(FuzzInput& in) {
  switch (in.byte() % 4) {
    case 0: {
      const auto value = static_cast<int32_t>(in.u32());
      const char* name = fuzz_status_string(value);
      const bool known = value >= MEGAMOE_SUCCESS && value <= MEGAMOE_ERROR_INTERNAL;
      if (name == nullptr || (std::strcmp(name, "unknown status") == 0) == known) {
        fail("megamoe_status_string(" + std::to_string(value) + ") is wrong");
      }
      break;
    }
    case 1: {
      std::string name;
      const size_t length = in.byte() % 32;
      for (size_t i = 0; i < length; ++i) name.push_back(static_cast<char>(in.byte()));
      const bool null_name = in.byte() % 8 == 7;
      const int64_t size = megamoe_struct_size(null_name ? nullptr : name.c_str());
      const std::string as_c = name.c_str();  // what the library sees: up to the first NUL
      const bool known = !null_name && (as_c == "megamoe_tensor_t" || as_c == "megamoe_device_info_t" ||
                                        as_c == "megamoe_moe_config_t" || as_c == "megamoe_ep_config_t");
      if ((size > 0) != known || (!known && size != -1)) fail("megamoe_struct_size is wrong");
      break;
    }
    case 2: {
      const auto backend_value = in.pick<int32_t>({MEGAMOE_BACKEND_CPU, MEGAMOE_BACKEND_BEST, MEGAMOE_BACKEND_CUDA,
                                                   3, -1, std::numeric_limits<int32_t>::max()});
      const int32_t device = in.pick<int32_t>({0, 1, -1});
      Call call(in, "megamoe_backend_available");
      const bool valid = (backend_value == MEGAMOE_BACKEND_CPU && device == 0) ||
                         (backend_value == MEGAMOE_BACKEND_BEST && device >= 0);
      call.run([&] { return fuzz_backend_available(backend_value, device); }, valid);
      break;
    }
    default:
      if (megamoe_version() != MEGAMOE_VERSION || megamoe_version_string() == nullptr ||
          megamoe_build_info() == nullptr || megamoe_live_object_count() < 0) {
        fail("version or build information is wrong");
      }
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return run_input(data, size, [](FuzzInput& in) {
    World world;
    int ops = 0;
    do {
      switch (in.byte() % 6) {
        case 0: create_context(in, world); break;
        case 1: context_queries(in, world); break;
        case 2: create_buffer(in, world); break;
        case 3: buffer_ops(in, world); break;
        case 4: destroy_buffer(in, world); break;
        default: plain_values(in); break;
      }
    } while (!in.exhausted() && ++ops < 16);
  });
}
