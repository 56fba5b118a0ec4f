// The routed grouped GEMM on the CUDA backend (megamoe_gemm_routed): two launches, routing
// metadata then the GEMM that gathers A rows by token and writes each slot's row, both reading the
// token count on the device, into workspace sized at creation: capturable in a CUDA graph.
#include <cuda_runtime.h>

#include <memory>

#include "core/backend.h"
#include "cuda/cuda_utils.h"
#include "cuda/cuda_layers.h"
#include "cuda/routing.cuh"
#include "cuda/sm90/gemm/gemm.h"

namespace megamoe::cuda {
namespace {

class CudaRoutedPlan final : public RoutedPlan {
 public:
  CudaRoutedPlan(const DeviceLimits& limits, const RoutedPlanSpec& spec)
      : limits_(limits),
        spec_(spec),
        offsets_(limits.device, routing_table_ints(spec.num_experts) * 4),
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

    sm90::GemmArgs g;
    g.kind = sm90::GemmKind::Routed;
    g.epilogue = sm90::GemmEpilogue::RoutedBf16;
    g.b = args.b.data.data;
    g.expert_specialization = (spec_.flags & MEGAMOE_PLAN_EXPERT_SPECIALIZATION) != 0;
    sm90::KernelParams& p = g.params;
    p.op.a = args.a.data.as<const uint8_t>();
    p.op.sfa = args.a.scales.as<const float>();
    p.op.sfb = args.b.scales.as<const float>();
    p.op.d = args.d.as<__nv_bfloat16>();
    p.layout.groups_data = offsets_.get();
    p.layout.rows = static_cast<uint32_t>(tokens * spec_.top_k);
    p.layout.n = static_cast<uint32_t>(spec_.n);
    p.layout.k = static_cast<uint32_t>(spec_.k);
    p.layout.groups = static_cast<uint32_t>(spec_.num_experts);
    p.routed.row_slot = order_.get<int32_t>();
    p.routed.top_k = static_cast<uint32_t>(spec_.top_k);
    p.routed.dropped_segment = true;
    p.routed.slot_weights = args.topk_weights ? args.topk_weights->as<const float>() : nullptr;
    sm90::gemm(g, limits_, s);
  }

 private:
  DeviceLimits limits_;
  RoutedPlanSpec spec_;
  DeviceArray offsets_;  // the routing table (routing.cuh)
  DeviceArray order_;    // [max_tokens * top_k]
};

}  // namespace

std::unique_ptr<RoutedPlan> make_routed_plan(const DeviceLimits& limits, const RoutedPlanSpec& spec) {
  if (spec.n % 128 != 0 || spec.k % 128 != 0 || spec.k / 128 > sm90::kGemmMaxKBlocks) {
    fail(MEGAMOE_ERROR_UNSUPPORTED, "the CUDA routed GEMM needs N and K multiples of 128 and K <= ",
         sm90::kGemmMaxKBlocks * 128, " (got N = ", spec.n, ", K = ", spec.k, ")");
  }
  return std::make_unique<CudaRoutedPlan>(limits, spec);
}

}  // namespace megamoe::cuda
