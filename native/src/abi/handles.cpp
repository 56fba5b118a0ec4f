#include "abi/handles.h"

#include <unordered_map>

#include "core/error.h"

namespace megamoe {
namespace {

static_assert(sizeof(void*) == 8, "handle keys are 64-bit values");

// Keys count up from here: bit 62 set and bit 63 clear is a non-canonical address on x86-64 and
// beyond any AArch64 virtual address, so a key never equals a pointer to anything a caller holds.
constexpr uintptr_t kFirstKey = uintptr_t{0x4d4d} << 48;

const char* kind_name(HandleKind kind) {
  switch (kind) {
    case HandleKind::kContext: return "megamoe_context_t";
    case HandleKind::kBuffer: return "megamoe_buffer_t";
    case HandleKind::kRoutedPlan: return "megamoe_routed_plan_t";
    case HandleKind::kMoeLayer: return "megamoe_moe_layer_t";
    case HandleKind::kEpComm: return "megamoe_ep_comm_t";
    case HandleKind::kEpDispatcher: return "megamoe_ep_dispatcher_t";
    case HandleKind::kEpLayer: return "megamoe_ep_layer_t";
  }
  return "handle";
}

struct Entry {
  HandleKind kind;
  void* object;
};

struct Registry {
  std::mutex mutex;
  std::unordered_map<uintptr_t, Entry> live;
  uintptr_t next_key = kFirstKey;
};

// Never destroyed: handles may be destroyed (C# finalizers, static destructors of the caller) after
// this library's own static objects are gone.
Registry& registry() {
  static Registry* instance = new Registry;
  return *instance;
}

// The live entry of `key`, checked to be of `kind`. Called with the registry locked.
std::unordered_map<uintptr_t, Entry>::iterator locate(Registry& r, const void* key, HandleKind kind,
                                                      const char* argument) {
  if (key == nullptr) invalid(argument, "handle is NULL");
  const auto it = r.live.find(reinterpret_cast<uintptr_t>(key));
  if (it == r.live.end()) {
    invalid(argument, "handle is not a live ", kind_name(kind), " (already destroyed, or never created)");
  }
  if (it->second.kind != kind) {
    invalid(argument, "handle is not a live ", kind_name(kind), ": it is a ", kind_name(it->second.kind));
  }
  return it;
}

}  // namespace

void* register_handle(HandleKind kind, void* object) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const uintptr_t key = r.next_key;
  r.live.emplace(key, Entry{kind, object});
  ++r.next_key;
  return reinterpret_cast<void*>(key);
}

void* find_handle(const void* key, HandleKind kind, const char* argument) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return locate(r, key, kind, argument)->second.object;
}

void* unregister_handle(const void* key, HandleKind kind, const char* argument) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto it = locate(r, key, kind, argument);
  void* object = it->second.object;
  r.live.erase(it);
  return object;
}

}  // namespace megamoe
