// The routed grouped GEMM on the CUDA backend (megamoe_gemm_routed): two launches, routing
// metadata then the GEMM that gathers A rows by token and writes each slot's row, both reading the
// token count on the device, into workspace sized at creation: capturable in a CUDA graph.
#include <cuda_runtime.h>

#include <memory>

#include "core/backend.h"
#include "cuda/cuda_utils.h"
#include "cuda/cuda_layers.h"
#include "cuda/kernels.h"
#include "cuda/routing.cuh"

namespace megamoe::cuda {
namespace {

class CudaRoutedPlan final : public RoutedPlan {
 public:
  CudaRoutedPlan(const DeviceLimits& limits, const RoutedPlanSpec& spec)
      : limits_(limits),
        spec_(spec),
        offsets_(limits.device, (spec.num_experts + 2) * int64_t{4}),
        order_(limits.device, spec.max_tokens * spec.top_k * 4) {}

  void run(const RoutedGemmArgs& args, void* stream) override {
    const int64_t tokens = args.a.data.dim(0);
    if (tokens == 0) return;
    DeviceGuard guard(limits_.device);
    const cudaStream_t s = as_stream(stream);

    RoutingArgs routing;
    routing.topk_idx = args.topk_idx.data;
    routing.topk_int64 = args.topk_idx.dtype == MEGAMOE_DTYPE_INT64;
    routing.tokens = static_cast<uint32_t>(tokens);
    routing.num_tokens = args.num_tokens ? args.num_tokens->as<const int32_t>() : nullptr;
    routing.top_k = static_cast<uint32_t>(spec_.top_k);
    routing.num_experts = static_cast<uint32_t>(spec_.num_experts);
    routing.offsets = offsets_.get<int32_t>();
    routing.order = order_.get<int32_t>();
    launch_routing(routing, limits_.device, s);

    GemmArgs g;
    g.kind = GemmKind::Routed;
    g.epilogue = GemmEpilogue::RoutedBf16;
    g.a = args.a.data.data;
    g.sfa = args.a.scales.as<const float>();
    g.b = args.b.data.data;
    g.sfb = args.b.scales.as<const float>();
    g.layout = offsets_.get();
    g.d = args.d.data;
    g.rows = static_cast<uint32_t>(tokens * spec_.top_k);
    g.n = static_cast<uint32_t>(spec_.n);
    g.k = static_cast<uint32_t>(spec_.k);
    g.groups = static_cast<uint32_t>(spec_.num_experts);
    g.row_slot = order_.get<int32_t>();
    g.top_k = static_cast<uint32_t>(spec_.top_k);
    g.expert_specialization = (spec_.flags & MEGAMOE_PLAN_EXPERT_SPECIALIZATION) != 0;
    g.dropped_segment = true;
    g.slot_weights = args.topk_weights ? args.topk_weights->as<const float>() : nullptr;
    gemm(g, limits_, s);
  }

 private:
  DeviceLimits limits_;
  RoutedPlanSpec spec_;
  DeviceArray offsets_;  // [E + 2]
  DeviceArray order_;    // [max_tokens * top_k]
};

}  // namespace

std::unique_ptr<RoutedPlan> make_routed_plan(const DeviceLimits& limits, const RoutedPlanSpec& spec) {
  if (spec.n % 128 != 0 || spec.k % 128 != 0 || spec.k / 128 > kGemmMaxKBlocks) {
    fail(MEGAMOE_ERROR_UNSUPPORTED, "the CUDA routed GEMM needs N and K multiples of 128 and K <= ",
         kGemmMaxKBlocks * 128, " (got N = ", spec.n, ", K = ", spec.k, ")");
  }
  return std::make_unique<CudaRoutedPlan>(limits, spec);
}

}  // namespace megamoe::cuda
