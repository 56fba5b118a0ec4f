// The MoE layer's down-projection: routed layout, float32 rows + fixed-order combine epilogue.
#include "cuda/gemm_launch.cuh"

namespace megamoe::cuda {

MEGAMOE_INSTANTIATE_ROUTED_GEMM(256, CombineF32)
MEGAMOE_INSTANTIATE_ROUTED_GEMM(128, CombineF32)

}  // namespace megamoe::cuda
