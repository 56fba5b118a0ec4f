// TMA tensor maps. cuTensorMapEncodeTiled is a driver API entry point; it is fetched through the
// runtime (cudaGetDriverEntryPoint*) so libmegamoe never links libcuda directly and still loads
// (and reports "no driver") on machines without one.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <cstdint>
#include <mutex>

#include "core/error.h"
#include "core/recent_cache.h"
#include "cuda/cuda_utils.h"

namespace megamoe::cuda {

inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 encoder = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult query = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
    const cudaError_t status = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &query);
#else
    const cudaError_t status = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &fn, cudaEnableDefault, &query);
#endif
    if (status == cudaSuccess && query == cudaDriverEntryPointSuccess) {
      encoder = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
    }
  });
  if (encoder == nullptr) {
    fail(MEGAMOE_ERROR_DEVICE, "the CUDA driver does not provide cuTensorMapEncodeTiled (driver too old for TMA)");
  }
  return encoder;
}

// A 2D row-major tensor [outer, inner] of `elem_bytes`-byte elements, loaded/stored in boxes of
// [box_outer, box_inner] with the given swizzle (0, 32, 64 or 128 bytes); out-of-bounds reads are
// zeros and out-of-bounds writes are dropped.
inline CUtensorMap encode_tensor_map_2d(const void* data, CUtensorMapDataType dtype, uint32_t elem_bytes, uint64_t inner,
                                        uint64_t outer, uint32_t box_inner, uint32_t box_outer, uint32_t swizzle_bytes,
                                        CUtensorMapL2promotion promotion, const char* what) {
  CUtensorMap map{};
  const cuuint64_t dims[2] = {inner, outer};
  const cuuint64_t strides[1] = {inner * elem_bytes};
  const cuuint32_t box[2] = {box_inner, box_outer};
  const cuuint32_t element_strides[2] = {1, 1};
  CUtensorMapSwizzle swizzle = CU_TENSOR_MAP_SWIZZLE_NONE;
  if (swizzle_bytes == 32) swizzle = CU_TENSOR_MAP_SWIZZLE_32B;
  if (swizzle_bytes == 64) swizzle = CU_TENSOR_MAP_SWIZZLE_64B;
  if (swizzle_bytes == 128) swizzle = CU_TENSOR_MAP_SWIZZLE_128B;
  const CUresult result = tensor_map_encoder()(&map, dtype, 2, const_cast<void*>(data), dims, strides, box,
                                               element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, promotion,
                                               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS) {
    fail(MEGAMOE_ERROR_INTERNAL, "cuTensorMapEncodeTiled failed (CUresult ", static_cast<int>(result), ") for '", what,
         "' [", outer, ", ", inner, "] box [", box_outer, ", ", box_inner, "] swizzle ", swizzle_bytes);
  }
  return map;
}

// encode_tensor_map_2d through a small per-thread cache: a map is a pure function of its arguments,
// so a hit is always the map encoding would produce, and eager calls that reuse their tensors (weights,
// a layer's workspace, a decode loop's buffers) skip the driver call (bench/NOTES.md, host overhead).
inline CUtensorMap make_tensor_map_2d(const void* data, CUtensorMapDataType dtype, uint32_t elem_bytes, uint64_t inner,
                                      uint64_t outer, uint32_t box_inner, uint32_t box_outer, uint32_t swizzle_bytes,
                                      CUtensorMapL2promotion promotion, const char* what) {
  struct Key {
    const void* data;
    uint64_t inner, outer;
    int32_t dtype, promotion;
    uint32_t elem_bytes, box_inner, box_outer, swizzle_bytes;
    bool operator==(const Key& o) const {
      return data == o.data && inner == o.inner && outer == o.outer && dtype == o.dtype && promotion == o.promotion &&
             elem_bytes == o.elem_bytes && box_inner == o.box_inner && box_outer == o.box_outer &&
             swizzle_bytes == o.swizzle_bytes;
    }
  };
  thread_local RecentCache<Key, CUtensorMap, 16> cache;
  const Key key{data, inner, outer, static_cast<int32_t>(dtype), static_cast<int32_t>(promotion),
                elem_bytes, box_inner, box_outer, swizzle_bytes};
  return cache.get(key, [&] {
    return encode_tensor_map_2d(data, dtype, elem_bytes, inner, outer, box_inner, box_outer, swizzle_bytes, promotion,
                                what);
  });
}

}  // namespace megamoe::cuda
