// The launcher of variant I of kGemmVariants, defined in launch.cuh and explicitly instantiated by
// the CMake-generated shards of instances.cu.in; dispatch.cu only declares it, so each variant is
// compiled once, in parallel with the others.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "cuda/cuda_utils.h"
#include "cuda/sm90/gemm/gemm.h"

namespace megamoe::cuda::sm90 {

// k_splits: CTAs per tile of a GemmKind::SplitK variant (the choice's; 1 for every other variant).
using GemmLauncher = void (*)(const GemmArgs&, uint32_t k_splits, const DeviceLimits&, cudaStream_t);

template <size_t kIndex>
void launch_variant(const GemmArgs& args, uint32_t k_splits, const DeviceLimits& limits, cudaStream_t stream);

// Variants each shard instantiates at most (launch.cuh's MEGAMOE_SM90_GEMM_SHARD lists 8).
constexpr size_t kGemmShardCapacity = 8;

}  // namespace megamoe::cuda::sm90
