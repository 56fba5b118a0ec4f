// Persistent, warp-specialized SM90 FP8 block-scaled GEMM (docs/NUMERICS.md section 3), one template
// for every variant of variants.h:
//
//   warpgroups 0..BM/64-1  math: mainloop.cuh (wgmma + promotion), then the variant's epilogue:
//                          epilogue_store.cuh (BF16 through a TMA store) or epilogue_fused.cuh
//                          (routed BF16, SwiGLU + FP8, float32 + combine);
//   last warpgroup         producer: producer.cuh (TMA / gathered loads, kStages deep).
//
// One CTA per SM walks the tiles blockIdx.x, blockIdx.x + gridDim.x, ... of scheduler.cuh; producer
// and math warps run the same scheduler and agree on every tile. Under expert specialization (routed
// layouts, BLOCK_N = 256) a segment of at most 64 rows runs in 64-row tiles whose two N-waves go to
// the two math warpgroups ("wide" tiles) instead of 128-row tiles whose rows are split between them.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cute/arch/cluster_sm90.hpp>
#include <cute/arch/copy_sm90_desc.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/arch/reg_reconfig.h>

#include <cstdint>
#include <cstdio>

#include "cuda/sm90/gemm/config.cuh"
#include "cuda/sm90/gemm/epilogue_fused.cuh"
#include "cuda/sm90/gemm/epilogue_store.cuh"
#include "cuda/sm90/gemm/mainloop.cuh"
#include "cuda/sm90/gemm/params.h"
#include "cuda/sm90/gemm/producer.cuh"
#include "cuda/sm90/gemm/scheduler.cuh"
#include "cuda/sm90/gemm/split_k.cuh"

namespace megamoe::cuda::sm90 {

template <GemmKind kKind, uint32_t BM, uint32_t BN, uint32_t kMulticast, GemmEpilogue kEpi>
__global__ void __launch_bounds__(GemmConfig<kKind, BM, BN, kMulticast, kEpi>::kThreads, 1)
    gemm_kernel(const __grid_constant__ CUtensorMap tmap_a, const __grid_constant__ CUtensorMap tmap_b,
                const __grid_constant__ CUtensorMap tmap_d, const __grid_constant__ CUtensorMap tmap_sfa,
                const __grid_constant__ CUtensorMap tmap_sfb, const __grid_constant__ KernelParams p) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = GemmConfig<kKind, BM, BN, kMulticast, kEpi>;
  constexpr uint32_t kMathThreads = Cfg::kMathThreads;

  extern __shared__ uint8_t smem_raw[];
  const SharedStorage<Cfg> smem(smem_raw);
  const uint32_t warp = threadIdx.x / 32;
  const uint32_t lane = threadIdx.x % 32;
  const uint32_t splits = kernel_k_splits<Cfg>(p);

  if (threadIdx.x == kMathThreads) {
    if constexpr (!Cfg::kGather) cute::prefetch_tma_descriptor(reinterpret_cast<const cute::TmaDescriptor*>(&tmap_a));
    cute::prefetch_tma_descriptor(reinterpret_cast<const cute::TmaDescriptor*>(&tmap_b));
    if constexpr (Cfg::kTmaStore) cute::prefetch_tma_descriptor(reinterpret_cast<const cute::TmaDescriptor*>(&tmap_d));
    if (p.op.scales_by_tma) {
      cute::prefetch_tma_descriptor(reinterpret_cast<const cute::TmaDescriptor*>(&tmap_sfa));
      cute::prefetch_tma_descriptor(reinterpret_cast<const cute::TmaDescriptor*>(&tmap_sfb));
    }
    // Lane 0 of producer warp 0 (with the TMA bytes) + the asynchronous scale (and A-row) arrivals
    // of every copying producer thread, where the scales do not come by TMA.
    const uint32_t copiers = Cfg::kGather ? 128 : (p.op.scales_by_tma ? 0 : 32);
#pragma unroll
    for (uint32_t s = 0; s < Cfg::kStages; ++s) {
      smem.full[s].init(1 + copiers);
      smem.empty[s].init(kMathThreads * kMulticast);  // every math thread of every CTA reading this stage
    }
    cutlass::arch::fence_barrier_init();
  }
  // With multicast the peer CTA writes into this CTA's shared memory and arrives on its barriers:
  // both must be initialized cluster-wide first.
  if constexpr (kMulticast > 1) {
    cute::cluster_arrive_relaxed();
    cute::cluster_wait();
  } else {
    __syncthreads();
  }

  // setmaxnreg takes effect only with each warpgroup's role as one branch of this if/else.
  if (threadIdx.x >= kMathThreads) {
    cutlass::arch::warpgroup_reg_dealloc<Cfg::kProducerRegisters>();
    run_producer<Cfg>(tmap_a, tmap_b, tmap_sfa, tmap_sfb, p, smem, warp - Cfg::kMathWarps, lane);
    if (splits > 1) cluster_barrier();
  } else {
    cutlass::arch::warpgroup_reg_alloc<Cfg::kMathRegisters>();
    const uint32_t wg = threadIdx.x / 128;
    TileScheduler<kKind, BM, BN, kMulticast> scheduler(p);
    PipelineState<Cfg::kStages> pipe;
    ScaleSlotState<Cfg::kStages> scales;
    TileWork work;
    bool split_reduced = false;
    while (scheduler.next(work)) {
      const MathTile t = math_tile<Cfg>(p, work, warp, lane, wg);
      float accum[BN / 2];
      run_mainloop<Cfg>(p, smem, pipe, scales, t, accum);
      if constexpr (kernel_can_split_k<Cfg>()) {
        split_k_reduce_store<Cfg>(p, work, smem, accum, t.r0, splits);
        split_reduced = true;
      } else if constexpr (kEpi == GemmEpilogue::Bf16) {
        epilogue_store_bf16<Cfg>(tmap_d, p, work, t, accum, smem, warp, lane);
      } else {
        const Fragment frag{t.r0, lane % 4, t.first_wave, t.last_wave};
        if constexpr (kEpi == GemmEpilogue::RoutedBf16) {
          epilogue_routed_bf16<BN, Cfg::kWaveN>(p, work, frag, accum);
        } else if constexpr (kEpi == GemmEpilogue::SwigluFp8) {
          epilogue_swiglu_fp8<kMathThreads>(p, work, frag, accum, t.wide, reinterpret_cast<float*>(smem.d),
                                            Cfg::kEpilogueBarrier);
        } else {
          epilogue_store_z<BN, Cfg::kWaveN>(p, work, frag, accum);
          combine_tile_tokens<BM, BN, kMathThreads>(p, work, reinterpret_cast<int32_t*>(smem.d), Cfg::kEpilogueBarrier);
        }
      }
    }
    if constexpr (kEpi == GemmEpilogue::Bf16 && !kernel_can_split_k<Cfg>()) epilogue_store_drain<Cfg>();
    // A split-K cluster has one tile per CTA; should a CTA get none, it still keeps the cluster's
    // barrier count.
    if (splits > 1 && !split_reduced) cluster_barrier();
  }
  // No CTA of a cluster may exit while its peer can still multicast into it, arrive on its
  // barriers or read its split-K partial tile; every thread of the cluster reaches this point.
  if (kMulticast > 1 || splits > 1) cluster_barrier();
#else
  if (blockIdx.x == 0 && threadIdx.x == 0) printf("megamoe: the SM90 GEMM kernel needs sm_90a\n");
#endif
}

}  // namespace megamoe::cuda::sm90
