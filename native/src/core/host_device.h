// MEGAMOE_HD marks plain C++ that is shared by host code (compiled and tested in CI without nvcc)
// and CUDA kernels: numeric formats, layout maps, routing metadata, scheduler index math.
#pragma once

#if defined(__CUDACC__)
#define MEGAMOE_HD __host__ __device__ __forceinline__
// Unrolls the next loop in device code (host compilers would warn about the unknown pragma).
#define MEGAMOE_UNROLL _Pragma("unroll")
#else
#define MEGAMOE_HD inline
#define MEGAMOE_UNROLL
#endif
