// The PTX the SM90 GEMM kernels issue directly (everything CuTe does not wrap the way they need):
// wgmma chains and their fences, shared-memory operand descriptors, cp.async with mbarrier
// completion, stmatrix, and the packing of BF16 / FP8 pairs.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cute/arch/mma_sm90_desc.hpp>
#include <cute/arch/mma_sm90_gmma.hpp>

#include <cstdint>
#include <utility>

namespace megamoe::cuda::sm90 {

// ---------------------------------------------------------------------------------------------
// wgmma
// ---------------------------------------------------------------------------------------------
template <uint32_t N>
struct Fp8Mma;
template <>
struct Fp8Mma<32> {
  using Op = cute::SM90::GMMA::MMA_64x32x32_F32E4M3E4M3_SS_TN<>;
};
template <>
struct Fp8Mma<64> {
  using Op = cute::SM90::GMMA::MMA_64x64x32_F32E4M3E4M3_SS_TN<>;
};
template <>
struct Fp8Mma<128> {
  using Op = cute::SM90::GMMA::MMA_64x128x32_F32E4M3E4M3_SS_TN<>;
};

template <uint32_t N, size_t... I>
__device__ __forceinline__ void wgmma_impl(uint64_t desc_a, uint64_t desc_b, float* d, bool accumulate,
                                           std::index_sequence<I...>) {
  Fp8Mma<N>::Op::fma(desc_a, desc_b, d[I]...,
                     accumulate ? cute::SM90::GMMA::ScaleOut::One : cute::SM90::GMMA::ScaleOut::Zero);
}
template <uint32_t N>
__device__ __forceinline__ void wgmma(uint64_t desc_a, uint64_t desc_b, float* d, bool accumulate) {
  wgmma_impl<N>(desc_a, desc_b, d, accumulate, std::make_index_sequence<N / 2>{});
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
__device__ __forceinline__ void fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }

// K-major operand tile of `rows` x 128 bytes, 128B-swizzled: 8-row core groups 1024 bytes apart
// (SBO), leading offset unused. Tiles differ only in the start address (16-byte units, the low
// word), so a loop takes smem_desc_start once and adds whole offsets to it: rebuilt from a
// shared-memory pointer on every K block, the A descriptors were computed in vector registers and
// moved to uniform ones before each wgmma (bench/NOTES.md, run 83). Shared memory ends below
// 256 KB, so start plus offset always fits the 14-bit field.
__device__ __forceinline__ uint32_t smem_desc_start(uint32_t smem_addr) { return (smem_addr & 0x3FFFFu) >> 4; }
__device__ __forceinline__ uint64_t smem_desc(uint32_t start) {
  cute::GmmaDescriptor desc;
  desc.bitfield.start_address_ = 0;
  desc.bitfield.leading_byte_offset_ = 0;
  desc.bitfield.stride_byte_offset_ = 1024 >> 4;
  desc.bitfield.base_offset_ = 0;
  desc.bitfield.layout_type_ = static_cast<uint8_t>(cute::SM90::GMMA::LayoutType::B128);
  return desc.desc_ | start;
}

// Byte offset of 16-byte chunk `chunk` of row `row` in such a tile: the 128B swizzle XORs the chunk
// index with the row's place in its 8-row group (what TMA writes, for rows written by hand).
__device__ __forceinline__ uint32_t swizzle128_offset(uint32_t row, uint32_t chunk) {
  return row * 128u + ((chunk ^ (row % 8u)) << 4);
}

// Orders this thread's shared-memory accesses through the generic proxy (cp.async, st.shared)
// against those of the async proxy (wgmma operand reads, TMA stores), in either direction: generic
// writes before async reads (gathered A rows), async reads before generic overwrites (split-K scratch).
__device__ __forceinline__ void fence_view_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// ---------------------------------------------------------------------------------------------
// cp.async with mbarrier completion
// ---------------------------------------------------------------------------------------------
// 4-byte asynchronous copy global -> shared; src_bytes = 0 writes a zero without reading.
__device__ __forceinline__ void cp_async_4(uint32_t smem_addr, const void* gmem, uint32_t src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr), "l"(gmem), "r"(src_bytes) : "memory");
}
// 16-byte asynchronous copy global -> shared around L1; src_bytes = 0 writes zeros without reading.
__device__ __forceinline__ void cp_async_16(uint32_t smem_addr, const void* gmem, uint32_t src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr), "l"(gmem), "r"(src_bytes) : "memory");
}
// Arrives on the mbarrier once all of this thread's earlier cp.async copies have landed (counts as
// one of the barrier's expected arrivals).
__device__ __forceinline__ void cp_async_arrive_noinc(uint32_t bar_addr) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar_addr) : "memory");
}

// Device-scope counter increment with acquire-release semantics: after a barrier of the writing
// threads it publishes their stores (release is cumulative over the barrier), and the thread that
// sees the last increment acquires every other publisher's stores (CUTLASS's generic barrier).
__device__ __forceinline__ int32_t atomic_add_acq_rel_gpu(int32_t* address, int32_t value) {
  int32_t old;
  asm volatile("atom.add.acq_rel.gpu.s32 %0, [%1], %2;\n" : "=r"(old) : "l"(address), "r"(value) : "memory");
  return old;
}

// ---------------------------------------------------------------------------------------------
// Epilogue helpers
// ---------------------------------------------------------------------------------------------
// A float4 from the shared memory of a CTA of the cluster (address from mapa / cute::set_block_rank).
__device__ __forceinline__ float4 ld_shared_cluster_f4(uint32_t cluster_addr) {
  float4 v;
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(cluster_addr)
               : "memory");
  return v;
}

__device__ __forceinline__ void stmatrix_x2(uint32_t smem_addr, uint32_t r0, uint32_t r1) {
  asm volatile("stmatrix.sync.aligned.x2.m8n8.shared.b16 [%0], {%1, %2};\n" ::"r"(smem_addr), "r"(r0), "r"(r1)
               : "memory");
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Two floats -> two FP8 E4M3 codes (low byte = lo), round to nearest even, saturating.
__device__ __forceinline__ uint16_t pack_fp8x2(float lo, float hi) {
  return static_cast<uint16_t>(__nv_cvt_float2_to_fp8x2(make_float2(lo, hi), __NV_SATFINITE, __NV_E4M3));
}

}  // namespace megamoe::cuda::sm90
