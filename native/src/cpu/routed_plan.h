// The routed grouped GEMM (operation 6): unsorted tokens with their top-k routing. The plan owns
// the routing workspace for max_tokens, so a run allocates nothing.
#pragma once

#include <memory>

#include "core/backend.h"
#include "cpu/thread_pool.h"

namespace megamoe::cpu {

std::unique_ptr<RoutedPlan> make_cpu_routed_plan(std::shared_ptr<ThreadPool> pool, const RoutedPlanSpec& spec);

}  // namespace megamoe::cpu
