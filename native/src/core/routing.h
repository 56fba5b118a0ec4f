// Routing metadata: the slots (t, j) of a batch grouped by expert, the shape every grouped path
// (routed GEMM, MoE layer) works on. group_slots_by_expert is the CPU backend's; the CUDA backend
// builds the same order on the device (cuda/routing_kernels.cu) from the pieces marked MEGAMOE_HD.
#pragma once

#include <cstdint>

#include "core/host_device.h"
#include "core/int_math.h"

namespace megamoe {

// The bucket of a routing index: its expert, or num_experts for a dropped slot: -1, and on the CUDA
// backend (which cannot reject device data without a host synchronization) any index outside
// [0, num_experts), as docs/NUMERICS.md section 3 says.
MEGAMOE_HD int32_t routing_bucket(int64_t index, int32_t num_experts) {
  return index >= 0 && index < num_experts ? static_cast<int32_t>(index) : num_experts;
}

// The device builds the order with `parts` workers (warps), worker w counting and placing the
// slots [begin, end) of its contiguous range in slot order: the result is the stable order of
// group_slots_by_expert whatever the number of workers.
struct SlotRange {
  int64_t begin;
  int64_t end;
};
MEGAMOE_HD SlotRange routing_worker_range(int64_t slots, uint32_t parts, uint32_t worker) {
  const int64_t chunk = ceil_div<int64_t>(slots, parts);
  const int64_t begin = chunk * worker < slots ? chunk * worker : slots;
  const int64_t end = begin + chunk < slots ? begin + chunk : slots;
  return {begin, end};
}

// Counting sort of the slots s = t * top_k + j of `tokens` tokens by expert. `expert_of(s)` gives
// the expert of slot s in [0, num_experts), or -1 for a dropped slot (left out).
// On return expert e owns order[offsets[e] .. offsets[e + 1]) in ascending slot order, and
// position[s] is the index of slot s in `order` (-1 if dropped). offsets has num_experts + 1
// entries; order and position have tokens * top_k.
template <typename ExpertOf>
void group_slots_by_expert(int64_t tokens, int32_t top_k, int32_t num_experts, ExpertOf&& expert_of,
                           int64_t* offsets, int64_t* order, int64_t* position) {
  const int64_t slots = tokens * top_k;
  for (int32_t e = 0; e <= num_experts; ++e) offsets[e] = 0;
  for (int64_t s = 0; s < slots; ++s) {
    const int64_t e = expert_of(s);
    if (e >= 0) ++offsets[e + 1];
  }
  for (int32_t e = 0; e < num_experts; ++e) offsets[e + 1] += offsets[e];
  // offsets[e] serves as expert e's fill cursor, then is restored by shifting.
  for (int64_t s = 0; s < slots; ++s) {
    const int64_t e = expert_of(s);
    if (e < 0) {
      position[s] = -1;
      continue;
    }
    const int64_t p = offsets[e]++;
    order[p] = s;
    position[s] = p;
  }
  for (int32_t e = num_experts; e > 0; --e) offsets[e] = offsets[e - 1];
  offsets[0] = 0;
}

}  // namespace megamoe
