// Masked layout, BLOCK_M = 64: one translation unit per (layout, BLOCK_M) so the instantiations
// compile in parallel.
#include "cuda/gemm_launch.cuh"

namespace megamoe::cuda {

MEGAMOE_INSTANTIATE_GEMM(Masked, 64, 128)
MEGAMOE_INSTANTIATE_GEMM(Masked, 64, 64)
MEGAMOE_INSTANTIATE_GEMM(Masked, 64, 32)

}  // namespace megamoe::cuda
