// Host side of one kernel variant: tensor maps, kernel parameters, grid, launch. Included only by
// the instantiation shards (instances.cu.in), which compile the variants of kGemmVariants in
// parallel; dispatch.cu reaches them through launch_variant<I> (launcher.h).
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "core/error.h"
#include "cuda/cuda_utils.h"
#include "cuda/sm90/gemm/gemm.h"
#include "cuda/sm90/gemm/kernel.cuh"
#include "cuda/sm90/gemm/launcher.h"
#include "cuda/sm90/gemm/schedule.h"
#include "cuda/tensor_map.h"

namespace megamoe::cuda::sm90 {

// What the kernel reads: the caller's structs plus what depends on the variant, the choice and the device.
template <class Cfg>
KernelParams make_kernel_params(const GemmArgs& args, uint32_t k_splits, const DeviceLimits& limits) {
  KernelParams p = args.params;
  p.layout.k_splits = k_splits;
  p.layout.band = swizzle_band(Cfg::kBlockM, Cfg::kBlockN, static_cast<uint32_t>(limits.num_sms));
  p.routed.narrow_m = Cfg::kCanWiden && args.expert_specialization ? Cfg::kBlockM / 2 : 0;
  return p;
}

// An upper bound of the tiles the scheduler can hand out, to launch no idle CTA.
template <class Cfg>
uint64_t max_tiles(const KernelParams& p) {
  const GemmLayout& l = p.layout;
  const uint64_t n_blocks = l.n / Cfg::kBlockN;
  uint64_t m_blocks = (uint64_t{l.rows} + Cfg::kBlockM - 1) / Cfg::kBlockM;
  if constexpr (Cfg::kKind == GemmKind::Masked) m_blocks = uint64_t{l.groups} * ((l.max_m + Cfg::kBlockM - 1) / Cfg::kBlockM);
  if constexpr (Cfg::kKind == GemmKind::Offsets) m_blocks += uint64_t{l.groups} + 2;
  if constexpr (Cfg::kKind == GemmKind::Routed) {
    // Rows are known on the device only: every segment may end in a partial tile.
    const uint64_t height = p.routed.narrow_m != 0 ? p.routed.narrow_m : Cfg::kBlockM;
    m_blocks = (uint64_t{l.rows} + height - 1) / height + uint64_t{l.groups} + 1;
  }
  return m_blocks * n_blocks;
}

template <GemmKind kKind, uint32_t BM, uint32_t BN, uint32_t kMulticast, GemmEpilogue kEpi>
void launch_gemm(const GemmArgs& args, uint32_t k_splits, const DeviceLimits& limits, cudaStream_t stream) {
  using Cfg = GemmConfig<kKind, BM, BN, kMulticast, kEpi>;
  // cudaFuncSetAttribute once per (variant, device).
  static std::atomic<uint64_t> smem_attribute_set{0};
  once_per_device(smem_attribute_set, limits.device, [] {
    check(cudaFuncSetAttribute(gemm_kernel<kKind, BM, BN, kMulticast, kEpi>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(Cfg::kSmemBytes)),
          "cudaFuncSetAttribute(gemm_kernel)");
  });

  KernelParams p = make_kernel_params<Cfg>(args, k_splits, limits);
  const uint64_t tiles = max_tiles<Cfg>(p);
  if (tiles == 0) return;
  const uint64_t k = p.layout.k, n = p.layout.n, rows = p.layout.rows;
  // With multicast each CTA of a cluster loads BM / kMulticast rows of the A tile. Gathering
  // kernels read A by cp.async and the fused epilogues write without TMA: those maps stay unused.
  CUtensorMap tmap_a{}, tmap_d{};
  if constexpr (!Cfg::kGather) {
    tmap_a = make_tensor_map_2d(p.op.a, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, k, rows, kGemmBlockK, BM / kMulticast, 128,
                                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, "a");
  }
  const CUtensorMap tmap_b = make_tensor_map_2d(args.b, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, k, n * p.layout.groups,
                                                kGemmBlockK, BN, 128, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, "b");
  if constexpr (Cfg::kTmaStore) {
    tmap_d = make_tensor_map_2d(p.op.d, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, n, rows, Cfg::kAtomN, BM, Cfg::kSwizzleD,
                                CU_TENSOR_MAP_L2_PROMOTION_NONE, "d");
  }
  // Scales by TMA where their rows allow it: a box of kGemmScaleChunk K blocks of the tile's A rows
  // (all BM of them in each CTA of a cluster) and of its N-waves' B rows.
  CUtensorMap tmap_sfa{}, tmap_sfb{};
  p.op.scales_by_tma = !Cfg::kGather && gemm_scales_by_tma(k, reinterpret_cast<uintptr_t>(p.op.sfa),
                                                           reinterpret_cast<uintptr_t>(p.op.sfb));
  if (p.op.scales_by_tma) {
    tmap_sfa = make_tensor_map_2d(p.op.sfa, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, k / kGemmBlockK, rows, kGemmScaleChunk, BM,
                                  0, CU_TENSOR_MAP_L2_PROMOTION_NONE, "a_scales");
    tmap_sfb = make_tensor_map_2d(p.op.sfb, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, k / kGemmBlockK,
                                  (n / 128) * p.layout.groups, kGemmScaleChunk, Cfg::kNWaves, 0,
                                  CU_TENSOR_MAP_L2_PROMOTION_NONE, "b_scales");
  }

  uint64_t grid = tiles < static_cast<uint64_t>(limits.num_sms) ? tiles : static_cast<uint64_t>(limits.num_sms);
  // Clusters of kMulticast CTAs; tile counts are multiples of kMulticast (gemm_multicast_allowed).
  grid = grid / kMulticast * kMulticast;
  if (grid == 0) grid = kMulticast;
  // Split-K (split_k.cuh): one cluster of k_splits CTAs per tile, every tile at once (the heuristic
  // splits only where that is about one wave).
  uint32_t cluster = kMulticast;
  if constexpr (kernel_can_split_k<Cfg>()) {
    const uint32_t splits = p.layout.k_splits;
    if (!gemm_split_allowed(BM, BN, splits) || tiles * splits > INT32_MAX) {
      fail(MEGAMOE_ERROR_INTERNAL, "split-K of ", splits, " is not available for GEMM tile ", BM, "x", BN);
    }
    grid = tiles * splits;
    cluster = splits;
  }

  if (cluster == 1) {
    gemm_kernel<kKind, BM, BN, kMulticast, kEpi>
        <<<static_cast<unsigned>(grid), Cfg::kThreads, Cfg::kSmemBytes, stream>>>(tmap_a, tmap_b, tmap_d, tmap_sfa,
                                                                                   tmap_sfb, p);
    check_launch("gemm_kernel");
  } else {
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(static_cast<unsigned>(grid), 1, 1);
    config.blockDim = dim3(Cfg::kThreads, 1, 1);
    config.dynamicSmemBytes = Cfg::kSmemBytes;
    config.stream = stream;
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeClusterDimension;
    attribute.val.clusterDim.x = cluster;
    attribute.val.clusterDim.y = 1;
    attribute.val.clusterDim.z = 1;
    config.attrs = &attribute;
    config.numAttrs = 1;
    check(cudaLaunchKernelEx(&config, gemm_kernel<kKind, BM, BN, kMulticast, kEpi>, tmap_a, tmap_b, tmap_d, tmap_sfa,
                             tmap_sfb, p),
          "cudaLaunchKernelEx(gemm_kernel, cluster)");
    check_launch("gemm_kernel");
  }
}

template <size_t kIndex>
void launch_variant(const GemmArgs& args, uint32_t k_splits, const DeviceLimits& limits, cudaStream_t stream) {
  if constexpr (kIndex < kNumGemmVariants) {
    constexpr GemmVariant v = kGemmVariants[kIndex];
    launch_gemm<v.kind, v.block_m, v.block_n, v.multicast, v.epilogue>(args, k_splits, limits, stream);
  }
}

}  // namespace megamoe::cuda::sm90

// Explicit instantiations of shard `shard` of `shards`, inside namespace megamoe::cuda::sm90: the
// variants shard, shard + shards, ... (kGemmShardCapacity of launcher.h per shard).
#define MEGAMOE_SM90_GEMM_VARIANT(I) \
  template void launch_variant<(I)>(const GemmArgs&, uint32_t, const DeviceLimits&, cudaStream_t);
#define MEGAMOE_SM90_GEMM_SHARD(shard, shards)                                                               \
  MEGAMOE_SM90_GEMM_VARIANT((shard) + 0 * (shards)) MEGAMOE_SM90_GEMM_VARIANT((shard) + 1 * (shards))       \
  MEGAMOE_SM90_GEMM_VARIANT((shard) + 2 * (shards)) MEGAMOE_SM90_GEMM_VARIANT((shard) + 3 * (shards))       \
  MEGAMOE_SM90_GEMM_VARIANT((shard) + 4 * (shards)) MEGAMOE_SM90_GEMM_VARIANT((shard) + 5 * (shards))       \
  MEGAMOE_SM90_GEMM_VARIANT((shard) + 6 * (shards)) MEGAMOE_SM90_GEMM_VARIANT((shard) + 7 * (shards))
