// The CUDA backend's stateful objects: routed plans and MoE layers (routed_plan.cu, moe_layer.cu).
#pragma once

#include <memory>

#include "core/backend.h"
#include "cuda/cuda_utils.h"

namespace megamoe::cuda {

std::unique_ptr<RoutedPlan> make_routed_plan(const DeviceLimits& limits, const RoutedPlanSpec& spec);
std::unique_ptr<MoeLayer> make_moe_layer(const DeviceLimits& limits, const MoeLayerSpec& spec, const MoeWeights& weights,
                                         void* stream);

}  // namespace megamoe::cuda
