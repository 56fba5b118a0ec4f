// Picks the tile configuration (core/gemm_heuristics.h) and calls the matching instantiation.
#include <cuda_runtime.h>

#include "core/error.h"
#include "core/gemm_heuristics.h"
#include "cuda/kernels.h"

namespace megamoe::cuda {

template <GemmKind kKind, uint32_t BM, uint32_t BN, uint32_t kMulticast, GemmEpilogue kEpi = GemmEpilogue::Bf16>
void launch_gemm(const GemmArgs& args, const DeviceLimits& limits, cudaStream_t stream);

namespace {

void dispatch_routed(GemmTile tile, const GemmArgs& args, const DeviceLimits& limits, cudaStream_t stream) {
  constexpr GemmKind R = GemmKind::Routed;
  const bool wide = tile.block_n == 256;
  switch (args.epilogue) {
    case GemmEpilogue::RoutedBf16:
      return wide ? launch_gemm<R, 128, 256, 1, GemmEpilogue::RoutedBf16>(args, limits, stream)
                  : launch_gemm<R, 128, 128, 1, GemmEpilogue::RoutedBf16>(args, limits, stream);
    case GemmEpilogue::SwigluFp8:
      return launch_gemm<R, 128, 256, 1, GemmEpilogue::SwigluFp8>(args, limits, stream);
    case GemmEpilogue::CombineF32:
      return wide ? launch_gemm<R, 128, 256, 1, GemmEpilogue::CombineF32>(args, limits, stream)
                  : launch_gemm<R, 128, 128, 1, GemmEpilogue::CombineF32>(args, limits, stream);
    case GemmEpilogue::Bf16: break;
  }
  fail(MEGAMOE_ERROR_INTERNAL, "routed GEMM launched without a routed epilogue");
}

template <GemmKind kKind, uint32_t kMulticast>
void dispatch_shape(GemmTile tile, const GemmArgs& args, const DeviceLimits& limits, cudaStream_t stream) {
  const uint32_t key = tile.block_m * 1000 + tile.block_n;
  switch (key) {
    case 128256: return launch_gemm<kKind, 128, 256, kMulticast>(args, limits, stream);
    case 128128: return launch_gemm<kKind, 128, 128, kMulticast>(args, limits, stream);
    case 128064: return launch_gemm<kKind, 128, 64, kMulticast>(args, limits, stream);
    case 128032: return launch_gemm<kKind, 128, 32, kMulticast>(args, limits, stream);
    case 64128: return launch_gemm<kKind, 64, 128, kMulticast>(args, limits, stream);
    case 64064: return launch_gemm<kKind, 64, 64, kMulticast>(args, limits, stream);
    case 64032: return launch_gemm<kKind, 64, 32, kMulticast>(args, limits, stream);
    default: break;
  }
  fail(MEGAMOE_ERROR_INTERNAL, "no GEMM instantiation for tile ", tile.block_m, "x", tile.block_n);
}

template <GemmKind kKind>
void dispatch_tile(GemmTile tile, const GemmArgs& args, const DeviceLimits& limits, cudaStream_t stream) {
  // gemm_multicast_allowed was checked by the heuristic; re-check: a bad choice would hang.
  if (tile.multicast == 2 && gemm_multicast_allowed(args.n, tile.block_n, 2) && limits.num_sms >= 2) {
    return dispatch_shape<kKind, 2>(tile, args, limits, stream);
  }
  return dispatch_shape<kKind, 1>(tile, args, limits, stream);
}

}  // namespace

GemmTile choose_tile(const GemmArgs& args, const DeviceLimits& limits) {
  GemmProblem problem;
  problem.kind = args.kind;
  problem.n = args.n;
  problem.k = args.k;
  problem.num_sms = limits.num_sms;
  problem.groups = args.kind == GemmKind::Dense ? 1 : args.groups;
  if (args.kind == GemmKind::Routed) {
    // Tiles of 128 rows, BLOCK_N 256 or 128: the heuristic compares them as an offsets layout with
    // the plan's slots spread evenly. SwiGLU needs 256; expert specialization widens 256 only.
    problem.kind = GemmKind::Offsets;
    problem.m = (static_cast<int64_t>(args.rows) + problem.groups - 1) / problem.groups;
    const bool can_256 = gemm_tile_allowed(args.n, 256);
    GemmTile t = choose_gemm_tile(problem);
    t.block_m = 128;
    t.multicast = 1;
    t.block_n = can_256 && (t.block_n >= 256 || args.expert_specialization || args.epilogue == GemmEpilogue::SwigluFp8)
                    ? 256
                    : 128;
    return t;
  }
  if (args.kind == GemmKind::Masked) {
    problem.m = args.expected_m > 0 ? std::min<int64_t>(args.expected_m, args.max_m) : args.max_m;
  } else {
    problem.m = (static_cast<int64_t>(args.rows) + problem.groups - 1) / problem.groups;
  }
  return choose_gemm_tile(problem);
}

void gemm(const GemmArgs& args, const DeviceLimits& limits, cudaStream_t stream) {
  if (args.rows == 0 || args.n == 0) return;
  if (args.k == 0 || args.k % kGemmBlockK != 0 || args.n % 128 != 0) {
    fail(MEGAMOE_ERROR_UNSUPPORTED, "the CUDA GEMMs need N and K to be positive multiples of 128 (got N = ", args.n,
         ", K = ", args.k, ")");
  }
  if (args.k / kGemmBlockK > kGemmMaxKBlocks) {
    fail(MEGAMOE_ERROR_UNSUPPORTED, "the CUDA GEMMs support K <= ", kGemmMaxKBlocks * kGemmBlockK, " (got ", args.k, ")");
  }
  const GemmTile tile = choose_tile(args, limits);
  if (!gemm_tile_allowed(args.n, tile.block_n)) {
    fail(MEGAMOE_ERROR_INTERNAL, "GEMM tile ", tile.block_m, "x", tile.block_n, " chosen for N = ", args.n, ", K = ", args.k);
  }
  switch (args.kind) {
    case GemmKind::Routed: return dispatch_routed(tile, args, limits, stream);
    case GemmKind::Dense: return dispatch_tile<GemmKind::Dense>(tile, args, limits, stream);
    case GemmKind::Contiguous: return dispatch_tile<GemmKind::Contiguous>(tile, args, limits, stream);
    case GemmKind::Masked: return dispatch_tile<GemmKind::Masked>(tile, args, limits, stream);
    case GemmKind::Offsets: return dispatch_tile<GemmKind::Offsets>(tile, args, limits, stream);
  }
}

}  // namespace megamoe::cuda
