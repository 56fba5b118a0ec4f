// Routing metadata: the slots (t, j) of a batch grouped by expert, the shape every grouped path
// (routed GEMM, MoE layer) works on. Host-only; the CPU backend builds it from host index data.
#pragma once

#include <cstdint>

namespace megamoe {

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
