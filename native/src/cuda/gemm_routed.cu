// Routed layout with the routed BF16 epilogue (megamoe_gemm_routed): one translation unit per
// layout so the instantiations compile in parallel.
#include "cuda/gemm_launch.cuh"

namespace megamoe::cuda {

MEGAMOE_INSTANTIATE_ROUTED_GEMM(256, RoutedBf16)
MEGAMOE_INSTANTIATE_ROUTED_GEMM(128, RoutedBf16)

}  // namespace megamoe::cuda
