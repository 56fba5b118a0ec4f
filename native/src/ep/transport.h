// How the ranks of an expert-parallel group move bytes (docs/EP.md): NCCL between GPUs, or the
// in-process loopback that simulates W ranks on one device (ep/loopback.h). Buffers are memory of the
// rank's backend (device pointers on CUDA); a collective is ordered on the stream it is given: it reads
// `send` after the work enqueued before it, and work enqueued after it sees `recv` and may reuse `send`.
// Every rank makes the same collective calls in the same order (as with NCCL); the tag says which call
// a rank is at, so a transport that can compare the ranks' calls fails them when they are out of step.
#pragma once

#include <cstdint>

namespace megamoe::ep {

enum class Step : uint32_t { kCreate = 0, kDispatch = 1, kReturn = 2 };

inline const char* step_name(Step step) {
  switch (step) {
    case Step::kCreate: return "the creation handshake";
    case Step::kDispatch: return "the dispatch exchange";
    case Step::kReturn: return "the return exchange";
  }
  return "an unknown step";
}

// Which call: the step of which EP object (objects are numbered in creation order on each rank).
struct CollectiveTag {
  uint32_t object = 0;
  Step step = Step::kCreate;
  bool operator==(const CollectiveTag& other) const { return object == other.object && step == other.step; }
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int32_t rank() const = 0;
  virtual int32_t world_size() const = 0;
  // Block p of `send` (bytes_per_peer each) lands in block rank() of rank p's `recv`.
  virtual void all_to_all(const void* send, void* recv, int64_t bytes_per_peer, CollectiveTag tag, void* stream) = 0;
  // `send` (bytes) lands in block rank() of every rank's `recv`.
  virtual void all_gather(const void* send, void* recv, int64_t bytes, CollectiveTag tag, void* stream) = 0;
};

}  // namespace megamoe::ep
