// The library's size limits in one place: the C ABI validates against them and the kernels size
// their tables and masks by them (so raising one here is checked at compile time where it matters).
#pragma once

#include <cstdint>

namespace megamoe {

// Slots per token. The CUDA combine keeps one bit per slot in a 32-bit token mask.
constexpr int32_t kMaxTopK = 16;
// Experts of a routed plan or MoE layer: the CUDA routing block keeps per-warp counters for every
// expert in shared memory (routing_smem_bytes).
constexpr int32_t kMaxExperts = 1024;
// Elements along any dimension and in any tensor: far beyond any device, and keeps byte sizes in int64.
constexpr int64_t kMaxExtent = int64_t{1} << 48;
// max_tokens of routed plans and MoE layers (the CUDA kernels index slots with 32-bit integers).
constexpr int64_t kMaxTokens = int64_t{1} << 31;
// CPU backend worker threads.
constexpr int32_t kMaxThreads = 4096;
// Ranks of an expert-parallel group: every rank owns at least one expert.
constexpr int32_t kMaxWorldSize = kMaxExperts;

static_assert(kMaxTopK <= 32, "token masks hold one bit per slot in 32 bits");

}  // namespace megamoe
