// Fuzz target: MoE layers (configuration, weights in FP8 with scales or BF16/FP32, progress callbacks
// that cancel) and their forward calls, with topk_idx holding out-of-range experts, FP8 or BF16
// activations, optional expert counters and a device-side token count.
#include <cmath>
#include <algorithm>
#include <limits>

#include "harness.h"

using namespace fuzz;

namespace {

constexpr auto kFp8 = MEGAMOE_DTYPE_FP8_E4M3;
constexpr auto kF32 = MEGAMOE_DTYPE_FP32;
constexpr auto kIn = Role::kInput;

struct Progress {
  int32_t calls_before_cancel;  // < 0: never cancel
  int64_t last_done = -1;
};

// Checks the documented progress contract (done <= total, never going back) and cancels on request.
int32_t on_progress(void* user_data, int64_t done, int64_t total) {
  auto& p = *static_cast<Progress*>(user_data);
  if (done < 0 || done > total || done < p.last_done) {
    fail("progress callback got done = " + std::to_string(done) + ", total = " + std::to_string(total) +
         " after done = " + std::to_string(p.last_done));
  }
  p.last_done = done;
  return p.calls_before_cancel-- == 0 ? 1 : 0;
}

struct Config {
  megamoe_moe_config_t c;
  bool valid;
};

Config read_config(FuzzInput& in, Progress& progress) {
  Config cfg{};
  megamoe_moe_config_t& c = cfg.c;
  const auto size = static_cast<uint32_t>(sizeof(megamoe_moe_config_t));
  c.struct_size = in.pick<uint32_t>({size, 0u, size - 8u, size + 8u});
  c.flags = in.pick<uint32_t>({0u, MEGAMOE_MOE_W13_INTERLEAVED, 2u});
  c.num_experts = in.pick<int32_t>({2, 1, 3, 0, -1, 1025});
  c.top_k = in.pick<int32_t>({2, 1, 3, 0, 17});
  c.hidden = in.pick<int64_t>({128, 256, 0, 64, 130, -128});
  c.intermediate = in.pick<int64_t>({128, 0, 64, -128});  // 256 for H only: keeps weights small
  c.max_tokens = in.pick<int64_t>({4, 1, 2, 0, -1, (int64_t{1} << 31) + 1});
  c.activation_alpha = in.pick<float>({1.0f, 1.702f, NAN, INFINITY});
  c.activation_beta = in.pick<float>({0.0f, 1.0f, NAN, -INFINITY});
  c.activation_clamp = in.pick<float>({0.0f, 7.0f, -1.0f, INFINITY, NAN});
  c.routed_scaling_factor = in.pick<float>({1.0f, 2.5f, 0.0f, NAN, -INFINITY});
  const uint8_t callback = in.byte() % 4;
  if (callback != 0) {
    progress.calls_before_cancel = callback == 1 ? -1 : (callback == 2 ? 0 : 1);
    c.progress = on_progress;
    c.progress_user_data = &progress;
  }
  cfg.valid = c.struct_size == size && c.flags <= 1u && c.num_experts >= 1 && c.num_experts <= 1024 &&
              c.top_k >= 1 && c.top_k <= 16 && c.hidden > 0 && c.hidden % 128 == 0 && c.intermediate > 0 &&
              c.intermediate % 128 == 0 && c.max_tokens >= 1 && c.max_tokens <= 4 &&
              std::isfinite(c.activation_alpha) && std::isfinite(c.activation_beta) &&
              std::isfinite(c.activation_clamp) && c.activation_clamp >= 0.0f &&
              std::isfinite(c.routed_scaling_factor);
  return cfg;
}

void forward(FuzzInput& in, megamoe_moe_layer_t layer, const megamoe_moe_config_t& c) {
  const int64_t t = in.pick<int64_t>({std::min<int64_t>(2, c.max_tokens), c.max_tokens, 0, 1, c.max_tokens + 1});
  const int64_t e = c.num_experts, h = c.hidden, k = c.top_k;
  const bool fp8 = in.flag();
  const uint8_t handle_choice = in.byte() % 16;
  megamoe_moe_layer_t layer_arg = handle_choice == 15   ? nullptr
                                  : handle_choice == 14 ? reinterpret_cast<megamoe_moe_layer_t>(shared_context())
                                                        : layer;
  Call call(in, "megamoe_moe_layer_forward");
  const auto* x = call.tensor(fp8 ? kFp8 : MEGAMOE_DTYPE_BF16, {t, h}, kIn);
  const bool scales_given = fp8 != (in.byte() % 16 == 15);  // sometimes the wrong way round
  const auto* x_scales = scales_given ? call.tensor(kF32, {t, h / 128}, kIn) : nullptr;
  const auto idx_dtype = in.pick<megamoe_dtype_t>({MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64});
  const auto* topk_idx = call.tensor(idx_dtype, {t, k}, kIn, [&](int64_t) { return expert_index(in, e); });
  const auto* topk_weights = call.tensor(kF32, {t, k}, kIn);
  const auto* y = call.tensor(MEGAMOE_DTYPE_BF16, {t, h}, Role::kOutput);
  const auto* expert_counts = call.optional_tensor(MEGAMOE_DTYPE_INT32, {e}, Role::kOutput);
  const auto* num_tokens = call.optional_tensor(MEGAMOE_DTYPE_INT32, {1}, kIn, [&](int64_t) -> int64_t {
    const uint8_t r = in.byte();
    if (r < 224) return t - r % (t + 1);
    const int64_t specials[] = {-1, t + 1, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
    return specials[r % 4];
  });

  const int64_t rows = dim_of(x, 0, t);
  int64_t valid_tokens = rows;
  bool indices_valid = true;  // T = 0 reads no index (docs/RELIABILITY.md)
  if (const auto count = read_indices(num_tokens); count && rows > 0) {
    valid_tokens = count->empty() ? rows : (*count)[0];
    indices_valid = valid_tokens >= 0 && valid_tokens <= rows;
  }
  if (const auto idx = read_indices(topk_idx); idx && indices_valid && rows > 0) {
    indices_valid = experts_in_range(*idx, e, std::min<int64_t>(valid_tokens, static_cast<int64_t>(idx->size())) * k);
  }
  void* stream = stream_argument(in);
  const bool valid = layer_arg == layer && t <= c.max_tokens && scales_given == fp8 && indices_valid && !call.mutated();
  call.run(
      [&] {
        return megamoe_moe_layer_forward(layer_arg, x, x_scales, topk_idx, topk_weights, y, expert_counts, num_tokens,
                                         stream);
      },
      valid, indices_valid);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return run_input(data, size, [](FuzzInput& in) {
    Progress progress{-1};
    const Config cfg = read_config(in, progress);
    const megamoe_moe_config_t& c = cfg.c;
    // Shapes for the weights come from the config only when it is sane; otherwise small stand-ins,
    // so a nonsense config cannot make the harness allocate much.
    const int64_t e = cfg.valid ? c.num_experts : 1, h = cfg.valid ? c.hidden : 128;
    const int64_t i = cfg.valid ? c.intermediate : 128;
    const auto w13_dtype = in.pick<megamoe_dtype_t>({kFp8, MEGAMOE_DTYPE_BF16, kF32});
    const auto w2_dtype = in.pick<megamoe_dtype_t>({kFp8, MEGAMOE_DTYPE_BF16, kF32});
    const bool w13_scales_given = (w13_dtype == kFp8) != (in.byte() % 16 == 15);
    const bool w2_scales_given = (w2_dtype == kFp8) != (in.byte() % 16 == 15);
    const bool config_given = in.byte() % 16 != 15;
    bool good_context = false;
    megamoe_context_t context = context_argument(in, shared_context(), good_context);
    const bool null_out = in.byte() % 16 == 15;

    Call create(in, "megamoe_moe_layer_create");
    const auto* w13 = create.tensor(w13_dtype, {e, 2 * i, h}, kIn);
    const auto* w13_scales = w13_scales_given ? create.tensor(kF32, {e, 2 * i / 128, h / 128}, kIn) : nullptr;
    const auto* w2 = create.tensor(w2_dtype, {e, h, i}, kIn);
    const auto* w2_scales = w2_scales_given ? create.tensor(kF32, {e, h / 128, i / 128}, kIn) : nullptr;
    void* stream = stream_argument(in);
    megamoe_moe_layer_t layer = nullptr;
    const bool valid = cfg.valid && config_given && good_context && !null_out && !create.mutated() &&
                       w13_scales_given == (w13_dtype == kFp8) && w2_scales_given == (w2_dtype == kFp8) &&
                       progress.calls_before_cancel < 0;
    const megamoe_status_t status = create.run(
        [&] {
          return megamoe_moe_layer_create(context, config_given ? &c : nullptr, w13, w13_scales, w2, w2_scales, stream,
                                          null_out ? nullptr : &layer);
        },
        valid);
    if (status != MEGAMOE_SUCCESS) {
      if (layer != nullptr) fail("megamoe_moe_layer_create failed but wrote out_layer");
      return;
    }
    Owned<megamoe_moe_layer_t, megamoe_moe_layer_destroy> owned(layer);
    int64_t workspace = -1;
    Call query(in, "megamoe_moe_layer_get_workspace_size");
    query.run([&] { return megamoe_moe_layer_get_workspace_size(layer, &workspace); }, true);
    if (workspace <= 0) fail("a layer reports a workspace of " + std::to_string(workspace) + " bytes");
    int calls = 0;
    do {
      forward(in, layer, c);
    } while (!in.exhausted() && ++calls < 3);
  });
}
