// One rank's endpoint of an expert-parallel group: its backend (the context it was made from), its
// transport, and what keeps the rank's collective calls in one sequence. EP objects (dispatchers and
// layers) share it; it lives until the last of them and the handle are gone.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

#include "core/backend.h"
#include "ep/transport.h"

namespace megamoe::ep {

class Communicator {
 public:
  Communicator(std::shared_ptr<Backend> backend, std::unique_ptr<Transport> transport)
      : backend_(std::move(backend)), transport_(std::move(transport)) {}

  const std::shared_ptr<Backend>& backend() const { return backend_; }
  Transport& transport() const { return *transport_; }
  int32_t rank() const { return transport_->rank(); }
  int32_t world_size() const { return transport_->world_size(); }

  // Held for a whole sequence of collectives (a creation, a forward, a dispatch, a combine): two
  // threads of one rank would otherwise interleave their sequences' calls.
  std::mutex& sequence_mutex() { return sequence_mutex_; }

  // EP objects are numbered in creation order; the numbers agree across ranks because creation is
  // collective. The number is taken only once a creation succeeded on every rank.
  uint32_t next_object() const { return objects_; }
  void commit_object() { ++objects_; }

 private:
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<Transport> transport_;
  std::mutex sequence_mutex_;
  uint32_t objects_ = 0;  // guarded by sequence_mutex_
};

}  // namespace megamoe::ep
