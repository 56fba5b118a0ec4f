// Expert-parallel test worlds: W CPU contexts and the W endpoints of a loopback group over them, a
// thread per rank for the collective calls, and the configurations of a problem split over the ranks.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "support/moe_problem.h"
#include "support/test_support.h"

namespace mmt {

// body(rank) for rank 0..world_size-1, each on its own thread (collective calls need every rank at
// once); returns once all are done. Check results on the calling thread.
template <typename Body>
void run_ranks(int32_t world_size, Body body) {
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < world_size; ++r) threads.emplace_back([&body, r] { body(r); });
  for (auto& t : threads) t.join();
}

class EpWorld {
 public:
  // Each context runs one worker thread: W ranks already run on W threads.
  explicit EpWorld(int32_t world_size);
  ~EpWorld();
  EpWorld(const EpWorld&) = delete;
  EpWorld& operator=(const EpWorld&) = delete;

  int32_t size() const { return static_cast<int32_t>(comms_.size()); }
  megamoe_ep_comm_t comm(int32_t rank) const { return comms_[static_cast<std::size_t>(rank)]; }
  megamoe_context_t context(int32_t rank) const { return contexts_[static_cast<std::size_t>(rank)]; }
  // Destroys rank's endpoint now (its objects keep it alive until they go too).
  void drop(int32_t rank);

  template <typename Body>
  void run(Body body) const {
    run_ranks(size(), body);
  }

 private:
  std::vector<megamoe_context_t> contexts_;
  std::vector<megamoe_ep_comm_t> comms_;
};

// First expert of every rank and E last: the first E % W ranks own one expert more.
std::vector<int32_t> split_experts(int64_t experts, int32_t world_size);

// The config of rank r's part of problem `p` (its cfg: E, k, H, I, activation, rsf).
megamoe_ep_config_t ep_config(const MoeProblem& p, int64_t max_tokens_per_rank, int32_t expert_begin,
                              int32_t num_local_experts, uint32_t flags = MEGAMOE_MOE_DEFAULT);

// BF16 ulps between two finite values (0 for +0 and -0).
int64_t bf16_ulps(uint16_t a, uint16_t b);

// An EP layer's y [rows, H] against the single layer's: bitwise when `exact` (W = 1); else equal up to
// the order of a token's float32 slot additions before the one BF16 rounding, i.e. within one BF16 ulp,
// or, where the slots cancel and the result is tiny, within 2^-16 of the row's largest magnitude.
::testing::AssertionResult ep_close_to_single(const uint16_t* got, const uint16_t* want, int64_t rows, int64_t hidden,
                                              bool exact);

// The batch's routing as INT32 (and INT64), descriptors that tolerate T = 0.
struct BatchTensors {
  HostVec<int32_t> idx32;
  HostVec<int64_t> idx64;
  megamoe_tensor_t x, idx, w;
  BatchTensors(const MoeBatch& b, int64_t hidden, bool idx64_routing = false);
  BatchTensors(const BatchTensors&) = delete;  // the descriptors point into this object
  BatchTensors& operator=(const BatchTensors&) = delete;
};

}  // namespace mmt
