// The structs behind the opaque C handles. Children hold a shared_ptr to their context's backend
// (EP objects to their communicator, which holds it), so destroying a context with live buffers,
// plans or layers only drops the caller's reference.
// `magic` lets entry points reject a destroyed handle or a handle of another kind (best effort:
// memory that was freed and reused can still fool it).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "core/backend.h"
#include "core/live_objects.h"
#include "ep/communicator.h"
#include "ep/dispatcher.h"
#include "ep/layer.h"

namespace megamoe {

template <uint32_t Magic>
struct Handle {
  uint32_t magic = Magic;
  LiveObject live;
  bool valid() const { return magic == Magic; }
  ~Handle() { magic = 0; }
};

}  // namespace megamoe

struct megamoe_context : megamoe::Handle<0x4d4f4543u> {
  static constexpr const char* kind_name = "megamoe_context_t";
  std::shared_ptr<megamoe::Backend> backend;
};

struct megamoe_buffer : megamoe::Handle<0x4d4f4542u> {
  static constexpr const char* kind_name = "megamoe_buffer_t";
  std::shared_ptr<megamoe::Backend> backend;
  void* data = nullptr;
  int64_t size = 0;
  ~megamoe_buffer() {
    if (data != nullptr) backend->deallocate(data);
  }
};

struct megamoe_routed_plan : megamoe::Handle<0x4d4f4550u> {
  static constexpr const char* kind_name = "megamoe_routed_plan_t";
  std::shared_ptr<megamoe::Backend> backend;
  megamoe::RoutedPlanSpec spec;
  std::unique_ptr<megamoe::RoutedPlan> impl;
  std::mutex run_mutex;  // the plan's workspace serves one call at a time
};

struct megamoe_moe_layer : megamoe::Handle<0x4d4f454cu> {
  static constexpr const char* kind_name = "megamoe_moe_layer_t";
  std::shared_ptr<megamoe::Backend> backend;
  megamoe::MoeLayerSpec spec;
  std::unique_ptr<megamoe::MoeLayer> impl;
  std::mutex forward_mutex;  // the layer's workspace serves one forward at a time
};

struct megamoe_ep_comm : megamoe::Handle<0x4d4f4558u> {
  static constexpr const char* kind_name = "megamoe_ep_comm_t";
  std::shared_ptr<megamoe::ep::Communicator> impl;
};

struct megamoe_ep_dispatcher : megamoe::Handle<0x4d4f4544u> {
  static constexpr const char* kind_name = "megamoe_ep_dispatcher_t";
  megamoe::ep::EpSpec spec;
  std::unique_ptr<megamoe::ep::Dispatcher> impl;  // keeps the communicator alive
};

struct megamoe_ep_layer : megamoe::Handle<0x4d4f4545u> {
  static constexpr const char* kind_name = "megamoe_ep_layer_t";
  megamoe::ep::EpSpec spec;
  std::unique_ptr<megamoe::ep::Layer> impl;  // keeps the communicator alive
};
