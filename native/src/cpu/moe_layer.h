// The MoE layer (operation 8) on the CPU: docs/NUMERICS.md section 4, bit for bit.
#pragma once

#include <memory>

#include "core/backend.h"
#include "cpu/thread_pool.h"

namespace megamoe::cpu {

std::unique_ptr<MoeLayer> make_cpu_moe_layer(std::shared_ptr<ThreadPool> pool, const MoeLayerSpec& spec,
                                             const MoeWeights& weights);

}  // namespace megamoe::cpu
