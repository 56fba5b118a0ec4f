// Dense layout, BLOCK_M = 128: one translation unit per (layout, BLOCK_M) so the instantiations
// compile in parallel.
#include "cuda/gemm_launch.cuh"

namespace megamoe::cuda {

MEGAMOE_INSTANTIATE_GEMM(Dense, 128, 256)
MEGAMOE_INSTANTIATE_GEMM(Dense, 128, 128)
MEGAMOE_INSTANTIATE_GEMM(Dense, 128, 64)
MEGAMOE_INSTANTIATE_GEMM(Dense, 128, 32)

}  // namespace megamoe::cuda
