// Picks the variant of a GEMM (heuristics.h) and calls its launcher (one per row of kGemmVariants,
// compiled in the instantiation shards).
#include <cuda_runtime.h>

#include <array>
#include <cstddef>
#include <utility>

#include "core/error.h"
#include "core/recent_cache.h"
#include "cuda/sm90/gemm/gemm.h"
#include "cuda/sm90/gemm/launcher.h"
#include "cuda/sm90/gemm/smem_budget.h"

#ifndef MEGAMOE_SM90_GEMM_SHARDS
#error "MEGAMOE_SM90_GEMM_SHARDS must be defined by the build (native/CMakeLists.txt)"
#endif

namespace megamoe::cuda::sm90 {
namespace {

static_assert(kNumGemmVariants <= kGemmShardCapacity * MEGAMOE_SM90_GEMM_SHARDS,
              "more GEMM variants than the instantiation shards hold: raise MEGAMOE_SM90_GEMM_SHARDS");

template <size_t... I>
constexpr std::array<GemmLauncher, sizeof...(I)> make_launchers(std::index_sequence<I...>) {
  return {&launch_variant<I>...};
}
const std::array<GemmLauncher, kNumGemmVariants> kLaunchers = make_launchers(std::make_index_sequence<kNumGemmVariants>{});

GemmRequest request_of(const GemmArgs& args, const DeviceLimits& limits) {
  GemmRequest r;
  r.kind = args.kind;
  r.epilogue = args.epilogue;
  r.rows = args.params.layout.rows;
  r.max_m = args.params.layout.max_m;
  r.expected_m = args.expected_m;
  r.n = args.params.layout.n;
  r.k = args.params.layout.k;
  r.groups = args.params.layout.groups;
  r.expert_specialization = args.expert_specialization;
  r.num_sms = limits.num_sms;
  return r;
}

}  // namespace

GemmChoice choose_variant(const GemmArgs& args, const DeviceLimits& limits) {
  // The override is read per call (tests and benchmarks switch it between launches); the model's
  // answer for the last few requests of this thread is remembered, since eager callers repeat them.
  thread_local RecentCache<std::pair<GemmRequest, GemmTileOverride>, GemmChoice, 8> memo;
  const std::pair<GemmRequest, GemmTileOverride> key{request_of(args, limits), gemm_tile_override_from_env()};
  return memo.get(key, [&] { return choose_gemm(key.first, key.second); });
}

void gemm(const GemmArgs& args, const DeviceLimits& limits, cudaStream_t stream) {
  const GemmLayout& l = args.params.layout;
  if (l.rows == 0 || l.n == 0) return;
  if (l.k == 0 || l.k % kGemmBlockK != 0 || l.n % 128 != 0) {
    fail(MEGAMOE_ERROR_UNSUPPORTED, "the CUDA GEMMs need N and K to be positive multiples of 128 (got N = ", l.n,
         ", K = ", l.k, ")");
  }
  if (l.k / kGemmBlockK > kGemmMaxKBlocks) {
    fail(MEGAMOE_ERROR_UNSUPPORTED, "the CUDA GEMMs support K <= ", kGemmMaxKBlocks * kGemmBlockK, " (got ", l.k, ")");
  }
  const GemmChoice choice = choose_variant(args, limits);
  int index = choice.variant;
  if (index < 0) {
    fail(MEGAMOE_ERROR_INTERNAL, "no GEMM variant instantiated for layout ", static_cast<int>(args.kind), ", epilogue ",
         static_cast<int>(args.epilogue), ", N = ", l.n, ", K = ", l.k);
  }
  const GemmVariant& v = kGemmVariants[static_cast<size_t>(index)];
  // A multicast cluster needs two SMs and an even tile count; the heuristics checked the latter,
  // re-check both: a bad choice would hang.
  if (v.multicast > 1 && (!gemm_multicast_allowed(l.n, v.block_n, v.multicast) || limits.num_sms < 2)) {
    index = gemm_variant_index({v.kind, v.epilogue, v.block_m, v.block_n, 1});
    if (index < 0) fail(MEGAMOE_ERROR_INTERNAL, "no single-CTA GEMM variant for tile ", v.block_m, "x", v.block_n);
  }
  kLaunchers[static_cast<size_t>(index)](args, choice.k_splits, limits, stream);
}

}  // namespace megamoe::cuda::sm90
