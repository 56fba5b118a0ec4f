#include "cpu/routed_plan.h"

#include <cstring>
#include <vector>

#include "core/formats.h"
#include "core/routing.h"
#include "cpu/gemm_driver.h"
#include "cpu/index_checks.h"

namespace megamoe::cpu {

namespace {

class CpuRoutedPlan final : public RoutedPlan {
 public:
  CpuRoutedPlan(std::shared_ptr<ThreadPool> pool, const RoutedPlanSpec& spec)
      : pool_(std::move(pool)),
        spec_(spec),
        offsets_(static_cast<size_t>(spec.num_experts) + 1),
        order_(static_cast<size_t>(spec.max_tokens * spec.top_k)),
        position_(order_.size()),
        rows_(order_.size()) {
    // At most one partial group per expert beyond the full ones.
    groups_.reserve(order_.size() / kMaxPanelRows + static_cast<size_t>(spec.num_experts));
  }

  void run(const RoutedGemmArgs& args, void* /*stream*/) override {
    const int64_t t_all = args.a.data.dim(0), k = args.a.data.dim(1);
    const int64_t n = args.b.data.dim(1);
    const int32_t top_k = spec_.top_k, experts = spec_.num_experts;
    // The C ABI layer checked T <= max_tokens and K, N, E, top_k against the plan.
    const int64_t tokens = checked_num_tokens(args.num_tokens, t_all, "a");
    check_topk_idx(args.topk_idx, tokens, experts);

    group_slots_by_expert(
        tokens, top_k, experts, [&](int64_t s) { return index_at(args.topk_idx, s); }, offsets_.data(),
        order_.data(), position_.data());
    const auto* a = args.a.data.as<const uint8_t>();
    const auto* a_scales = args.a.scales.as<const float>();
    const int64_t slots = offsets_[static_cast<size_t>(experts)];
    for (int64_t p = 0; p < slots; ++p) {
      const int64_t t = order_[static_cast<size_t>(p)] / top_k;
      rows_[static_cast<size_t>(p)] = {a + t * k, a_scales + t * (k / kBlock)};
    }
    groups_.clear();
    for (int32_t e = 0; e < experts; ++e) {
      const int64_t begin = offsets_[static_cast<size_t>(e)];
      add_row_groups(groups_, e, begin, offsets_[static_cast<size_t>(e) + 1] - begin);
    }

    auto* d = args.d.as<uint16_t>();
    for (int64_t s = 0; s < tokens * top_k; ++s)
      if (position_[static_cast<size_t>(s)] < 0) std::memset(d + s * n, 0, static_cast<size_t>(n) * 2);
    const float* weights = args.topk_weights ? args.topk_weights->as<const float>() : nullptr;
    run_row_groups(*pool_, groups_, rows_.data(), args.b, [&](int64_t row, int64_t col, const float* acc) {
      const int64_t slot = order_[static_cast<size_t>(row)];
      uint16_t* out = d + slot * n + col;
      if (weights == nullptr) {
        for (int32_t c = 0; c < kPanelCols; ++c) out[c] = float_to_bf16(acc[c]);
      } else {
        const float w = weights[slot];
        for (int32_t c = 0; c < kPanelCols; ++c) out[c] = float_to_bf16(w * acc[c]);
      }
    });
  }

 private:
  std::shared_ptr<ThreadPool> pool_;
  RoutedPlanSpec spec_;
  std::vector<int64_t> offsets_;
  std::vector<int64_t> order_;     // slots grouped by expert
  std::vector<int64_t> position_;  // slot -> index in order_, -1 if dropped
  std::vector<Fp8Row> rows_;       // A row of each entry of order_
  std::vector<RowGroup> groups_;
};

}  // namespace

std::unique_ptr<RoutedPlan> make_cpu_routed_plan(std::shared_ptr<ThreadPool> pool, const RoutedPlanSpec& spec) {
  return std::make_unique<CpuRoutedPlan>(std::move(pool), spec);
}

}  // namespace megamoe::cpu
