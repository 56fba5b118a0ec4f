// Host entry points of the CUDA backend's expert-parallel primitives (ep_kernels.cu); the arguments
// and what each computes are in core/backend.h.
#pragma once

#include <cuda_runtime.h>

#include "core/backend.h"
#include "cuda/cuda_utils.h"

namespace megamoe::cuda {

void ep_pack(const EpPackArgs& args, const DeviceLimits& limits, cudaStream_t stream);
void ep_unpack(const EpUnpackArgs& args, const DeviceLimits& limits, cudaStream_t stream);
void ep_unpack_expanded(const EpUnpackExpandedArgs& args, const DeviceLimits& limits, cudaStream_t stream);
void ep_return(const EpReturnArgs& args, const DeviceLimits& limits, cudaStream_t stream);
void ep_combine(const EpCombineArgs& args, const DeviceLimits& limits, cudaStream_t stream);

}  // namespace megamoe::cuda
