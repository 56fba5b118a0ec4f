// The MoE layer's up-projection: routed layout, SwiGLU + FP8 re-quantization epilogue.
#include "cuda/gemm_launch.cuh"

namespace megamoe::cuda {

MEGAMOE_INSTANTIATE_ROUTED_GEMM(256, SwigluFp8)

}  // namespace megamoe::cuda
