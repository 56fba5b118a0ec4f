// MEGAMOE_HD marks plain C++ that is shared by host code (compiled and tested in CI without nvcc)
// and CUDA kernels: numeric formats, layout maps, routing metadata, scheduler index math.
#pragma once

#if defined(__CUDACC__)
#define MEGAMOE_HD __host__ __device__ __forceinline__
#else
#define MEGAMOE_HD inline
#endif
