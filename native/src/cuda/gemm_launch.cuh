// Host side of one GEMM instantiation: tensor maps, launch configuration, launch. Included by the
// gemm_<kind>_bm<BM>.cu files, which instantiate launch_gemm for their tiles (compiled in parallel).
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "core/gemm_heuristics.h"
#include "core/gemm_schedule.h"
#include "cuda/cuda_utils.h"
#include "cuda/gemm_kernel.cuh"
#include "cuda/kernels.h"
#include "cuda/tensor_map.h"

namespace megamoe::cuda {

template <GemmKind kKind, uint32_t BM, uint32_t BN, uint32_t kMulticast, GemmEpilogue kEpi = GemmEpilogue::Bf16>
void launch_gemm(const GemmArgs& args, const DeviceLimits& limits, cudaStream_t stream);

namespace detail {

// cudaFuncSetAttribute once per (instantiation, device).
template <GemmKind kKind, uint32_t BM, uint32_t BN, uint32_t kMulticast, GemmEpilogue kEpi>
void ensure_smem_attribute(int device) {
  static std::atomic<uint64_t> done{0};
  once_per_device(done, device, [] {
    check(cudaFuncSetAttribute(sm90::gemm_kernel<kKind, BM, BN, kMulticast, kEpi>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(sm90::GemmConfig<kKind, BM, BN, kMulticast, kEpi>::kSmemBytes)),
          "cudaFuncSetAttribute(gemm_kernel)");
  });
}

}  // namespace detail

template <GemmKind kKind, uint32_t BM, uint32_t BN, uint32_t kMulticast, GemmEpilogue kEpi>
void launch_gemm(const GemmArgs& args, const DeviceLimits& limits, cudaStream_t stream) {
  using Cfg = sm90::GemmConfig<kKind, BM, BN, kMulticast, kEpi>;
  detail::ensure_smem_attribute<kKind, BM, BN, kMulticast, kEpi>(limits.device);

  const uint64_t k = args.k, n = args.n, rows = args.rows;
  // With multicast each CTA of a cluster loads BM / kMulticast rows of the A tile. Gathering
  // kernels read A by cp.async and the fused epilogues write without TMA: those maps stay unused.
  CUtensorMap tmap_a{}, tmap_d{};
  if constexpr (!Cfg::kGather) {
    tmap_a = make_tensor_map_2d(args.a, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, k, rows, kGemmBlockK, BM / kMulticast, 128,
                                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, "a");
  }
  const CUtensorMap tmap_b = make_tensor_map_2d(args.b, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, k, n * args.groups, kGemmBlockK,
                                                BN, 128, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, "b");
  if constexpr (kEpi == GemmEpilogue::Bf16) {
    tmap_d = make_tensor_map_2d(args.d, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, n, rows, Cfg::kAtomN, BM, Cfg::kSwizzleD,
                                CU_TENSOR_MAP_L2_PROMOTION_NONE, "d");
  }

  KernelParams params{};
  params.a = static_cast<const uint8_t*>(args.a);
  params.sfa = args.sfa;
  params.sfb = args.sfb;
  params.layout = args.layout;
  params.layout_int64 = args.layout_int64;
  params.d = static_cast<__nv_bfloat16*>(args.d);
  params.rows = args.rows;
  params.max_m = args.max_m;
  params.n = args.n;
  params.k = args.k;
  params.groups = args.groups;
  params.band = swizzle_band(BM, BN, static_cast<uint32_t>(limits.num_sms));
  params.row_slot = args.row_slot;
  params.top_k = args.top_k;
  params.narrow_m = Cfg::kCanWiden && args.expert_specialization ? BM / 2 : 0;
  params.dropped_segment = args.dropped_segment;
  params.slot_weights = args.slot_weights;
  params.act = args.act;
  params.act_scales = args.act_scales;
  params.act_cols = args.act_cols;
  params.weight_scale = args.weight_scale;
  params.alpha = args.alpha;
  params.beta = args.beta;
  params.clamp = args.clamp;
  params.z = args.z;
  params.counters = args.counters;
  params.token_masks = args.token_masks;
  params.y = static_cast<__nv_bfloat16*>(args.y);

  // Upper bound of the tiles, to launch no idle CTA.
  const uint64_t n_blocks = n / BN;
  uint64_t m_blocks = (rows + BM - 1) / BM;
  if constexpr (kKind == GemmKind::Masked) m_blocks = uint64_t{args.groups} * ((args.max_m + BM - 1) / BM);
  if constexpr (kKind == GemmKind::Offsets) m_blocks += uint64_t{args.groups} + 2;
  if constexpr (kKind == GemmKind::Routed) {
    // Rows are known on the device only: every segment may end in a partial tile.
    m_blocks = (rows + (params.narrow_m != 0 ? params.narrow_m : BM) - 1) / (params.narrow_m != 0 ? params.narrow_m : BM) +
               uint64_t{args.groups} + 1;
  }
  const uint64_t tiles = m_blocks * n_blocks;
  if (tiles == 0) return;
  uint64_t grid = tiles < static_cast<uint64_t>(limits.num_sms) ? tiles : static_cast<uint64_t>(limits.num_sms);
  // Clusters of kMulticast CTAs; tile counts are multiples of kMulticast (gemm_multicast_allowed).
  grid = grid / kMulticast * kMulticast;
  if (grid == 0) grid = kMulticast;

  if constexpr (kMulticast == 1) {
    sm90::gemm_kernel<kKind, BM, BN, 1, kEpi><<<static_cast<unsigned>(grid), Cfg::kThreads, Cfg::kSmemBytes, stream>>>(
        tmap_a, tmap_b, tmap_d, params);
    check_launch("gemm_kernel");
  } else {
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(static_cast<unsigned>(grid), 1, 1);
    config.blockDim = dim3(Cfg::kThreads, 1, 1);
    config.dynamicSmemBytes = Cfg::kSmemBytes;
    config.stream = stream;
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeClusterDimension;
    attribute.val.clusterDim.x = kMulticast;
    attribute.val.clusterDim.y = 1;
    attribute.val.clusterDim.z = 1;
    config.attrs = &attribute;
    config.numAttrs = 1;
    check(cudaLaunchKernelEx(&config, sm90::gemm_kernel<kKind, BM, BN, kMulticast, kEpi>, tmap_a, tmap_b, tmap_d, params),
          "cudaLaunchKernelEx(gemm_kernel, cluster)");
    check_launch("gemm_kernel");
  }
}

#define MEGAMOE_INSTANTIATE_GEMM(KIND, BM, BN)                                                               \
  template void launch_gemm<GemmKind::KIND, BM, BN, 1>(const GemmArgs&, const DeviceLimits&, cudaStream_t); \
  template void launch_gemm<GemmKind::KIND, BM, BN, 2>(const GemmArgs&, const DeviceLimits&, cudaStream_t);

// Routed layouts: 128-row tiles, no multicast, one epilogue.
#define MEGAMOE_INSTANTIATE_ROUTED_GEMM(BN, EPI) \
  template void launch_gemm<GemmKind::Routed, 128, BN, 1, GemmEpilogue::EPI>(const GemmArgs&, const DeviceLimits&, cudaStream_t);

}  // namespace megamoe::cuda
