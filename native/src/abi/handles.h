// The structs behind the opaque C handles. Children hold a shared_ptr to their context's backend
// (EP objects to their communicator, which holds it), so destroying a context with live buffers,
// plans or layers only drops the caller's reference.
//
// The value a caller holds is not the object's address but a key of a process-wide registry of live
// objects (handles.cpp): every entry point looks the key up before touching the object, and destroy
// removes it before freeing. Keys are never reused, so a destroyed, forged or wrong-kind handle is
// always rejected, and nothing is dereferenced to find that out.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "core/backend.h"
#include "core/backend_buffer.h"
#include "core/live_objects.h"
#include "ep/communicator.h"
#include "ep/dispatcher.h"
#include "ep/layer.h"

namespace megamoe {

enum class HandleKind : uint8_t { kContext, kBuffer, kRoutedPlan, kMoeLayer, kEpComm, kEpDispatcher, kEpLayer };

// Adds `object` to the registry and returns its new key. Throws std::bad_alloc, leaving it out.
void* register_handle(HandleKind kind, void* object);
// The object behind `key`, which must be a live handle of `kind`; else invalid(argument, ...).
void* find_handle(const void* key, HandleKind kind, const char* argument);
// As find_handle, and removes the key: the caller now owns the object.
void* unregister_handle(const void* key, HandleKind kind, const char* argument);

// Hands `object` to the caller as a handle (the last step of every *_create, so a failed create
// leaves nothing behind).
template <typename T>
T* publish(std::unique_ptr<T> object) {
  T* key = static_cast<T*>(register_handle(T::kKind, object.get()));
  object.release();
  return key;
}

template <typename T>
T& require_handle(T* handle, const char* argument) {
  return *static_cast<T*>(find_handle(handle, T::kKind, argument));
}

// *_destroy: NULL is a no-op; anything else must be a live handle of T's kind.
template <typename T>
void destroy_handle(T* handle, const char* argument) {
  if (handle == nullptr) return;
  std::unique_ptr<T> object(static_cast<T*>(unregister_handle(handle, T::kKind, argument)));
}

}  // namespace megamoe

struct megamoe_context {
  static constexpr megamoe::HandleKind kKind = megamoe::HandleKind::kContext;
  megamoe::LiveObject live;
  std::shared_ptr<megamoe::Backend> backend;
};

struct megamoe_buffer {
  static constexpr megamoe::HandleKind kKind = megamoe::HandleKind::kBuffer;
  megamoe::LiveObject live;
  megamoe::BackendBuffer memory;
};

struct megamoe_routed_plan {
  static constexpr megamoe::HandleKind kKind = megamoe::HandleKind::kRoutedPlan;
  megamoe::LiveObject live;
  std::shared_ptr<megamoe::Backend> backend;
  megamoe::RoutedPlanSpec spec;
  std::unique_ptr<megamoe::RoutedPlan> impl;
  std::mutex run_mutex;  // the plan's workspace serves one call at a time
};

struct megamoe_moe_layer {
  static constexpr megamoe::HandleKind kKind = megamoe::HandleKind::kMoeLayer;
  megamoe::LiveObject live;
  std::shared_ptr<megamoe::Backend> backend;
  megamoe::MoeLayerSpec spec;
  std::unique_ptr<megamoe::MoeLayer> impl;
  std::mutex forward_mutex;  // the layer's workspace serves one forward at a time
};

struct megamoe_ep_comm {
  static constexpr megamoe::HandleKind kKind = megamoe::HandleKind::kEpComm;
  megamoe::LiveObject live;
  std::shared_ptr<megamoe::ep::Communicator> impl;
};

struct megamoe_ep_dispatcher {
  static constexpr megamoe::HandleKind kKind = megamoe::HandleKind::kEpDispatcher;
  megamoe::LiveObject live;
  megamoe::ep::EpSpec spec;
  std::unique_ptr<megamoe::ep::Dispatcher> impl;  // keeps the communicator alive
};

struct megamoe_ep_layer {
  static constexpr megamoe::HandleKind kKind = megamoe::HandleKind::kEpLayer;
  megamoe::LiveObject live;
  megamoe::ep::EpSpec spec;
  std::unique_ptr<megamoe::ep::Layer> impl;  // keeps the communicator alive
};
