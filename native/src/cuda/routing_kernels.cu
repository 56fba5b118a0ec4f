// The routed GEMM's first launch: routing metadata in one thread block (cuda/routing.cuh).
#include <cuda_runtime.h>

#include <atomic>

#include "cuda/cuda_utils.h"
#include "cuda/routing.cuh"

namespace megamoe::cuda {
namespace {

__global__ void __launch_bounds__(kRoutingThreads, 1) routing_kernel(const RoutingArgs args) {
  extern __shared__ int32_t smem[];
  build_routing(args, smem);
}

}  // namespace

void launch_routing(const RoutingArgs& args, int device, cudaStream_t stream) {
  const size_t smem = routing_smem_bytes(args.num_experts);
  static std::atomic<uint64_t> attribute_set{0};
  once_per_device(attribute_set, device, [] {
    check(cudaFuncSetAttribute(routing_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(routing_smem_bytes(kMaxExperts))),
          "cudaFuncSetAttribute(routing_kernel)");
  });
  routing_kernel<<<1, kRoutingThreads, smem, stream>>>(args);
  check_launch("routing_kernel");
}

}  // namespace megamoe::cuda
