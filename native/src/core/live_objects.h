// Process-wide count of live handles, so leak tests (C# finalization, fuzzers) can assert that
// every object created was destroyed.
#pragma once

#include <atomic>
#include <cstdint>

namespace megamoe {

std::atomic<int64_t>& live_object_counter();

// Embed in every handle struct: counts construction and destruction.
struct LiveObject {
  LiveObject() { live_object_counter().fetch_add(1, std::memory_order_relaxed); }
  LiveObject(const LiveObject&) = delete;
  LiveObject& operator=(const LiveObject&) = delete;
  ~LiveObject() { live_object_counter().fetch_sub(1, std::memory_order_relaxed); }
};

}  // namespace megamoe
