// The interface every backend (CPU reference, CUDA SM90) implements. The C ABI layer validates
// all descriptors first (abi/), so a backend receives well-formed tensors on its own device and
// only checks what needs the data itself (index ranges that are cheap to read on the host).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "core/tensor.h"
#include "megamoe/megamoe.h"

namespace megamoe {

// FP8 data with its float32 block scales.
struct ScaledTensor {
  Tensor data;
  Tensor scales;
};

struct ActivationSpec {
  float alpha = 1.0f;
  float beta = 0.0f;
  float clamp = 0.0f;  // > 0 enables gate <= c and -c <= up <= c
};

struct MoeLayerSpec {
  int32_t num_experts = 0;
  int32_t top_k = 0;
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t max_tokens = 0;
  ActivationSpec activation;
  float routed_scaling_factor = 1.0f;
  bool w13_interleaved = false;
  bool expert_specialization_up = false;  // CUDA only: tile height per expert on the device
  bool expert_specialization_down = false;
  megamoe_progress_fn progress = nullptr;
  void* progress_user_data = nullptr;
};

// Weights as the caller gave them: FP8 with scales, or BF16/FP32 without.
struct MoeWeights {
  Tensor w13;
  std::optional<Tensor> w13_scales;
  Tensor w2;
  std::optional<Tensor> w2_scales;
};

struct MoeForwardArgs {
  Tensor x;
  std::optional<Tensor> x_scales;  // present iff x is FP8
  Tensor topk_idx;
  Tensor topk_weights;
  Tensor y;
  std::optional<Tensor> expert_counts;
  std::optional<Tensor> num_tokens;
};

struct RoutedPlanSpec {
  int64_t max_tokens = 0;
  int32_t top_k = 0;
  int32_t num_experts = 0;
  int64_t n = 0;
  int64_t k = 0;
  uint32_t flags = 0;
};

struct RoutedGemmArgs {
  ScaledTensor a;
  ScaledTensor b;
  Tensor topk_idx;
  std::optional<Tensor> topk_weights;
  std::optional<Tensor> num_tokens;
  Tensor d;
};

class MoeLayer {
 public:
  virtual ~MoeLayer() = default;
  virtual int64_t workspace_bytes() const = 0;
  virtual void forward(const MoeForwardArgs& args, void* stream) = 0;
};

class RoutedPlan {
 public:
  virtual ~RoutedPlan() = default;
  virtual void run(const RoutedGemmArgs& args, void* stream) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual megamoe_backend_t kind() const = 0;
  virtual Device device() const = 0;
  virtual void set_num_threads(int32_t num_threads) = 0;
  virtual void device_info(megamoe_device_info_t& info) const = 0;
  virtual void synchronize(void* stream) = 0;

  virtual void* allocate(int64_t bytes) = 0;
  virtual void deallocate(void* data) noexcept = 0;
  virtual void write(void* device_dst, const void* host_src, int64_t bytes, void* stream) = 0;
  virtual void read(void* host_dst, const void* device_src, int64_t bytes, void* stream) = 0;
  virtual void fill(void* device_dst, uint8_t value, int64_t bytes, void* stream) = 0;

  // nonfinite_rows: INT32 [1], incremented (wrapping) by the rows of x holding a NaN or an infinity.
  virtual void quantize_activations(const Tensor& x, const ScaledTensor& out, bool ue8m0,
                                    const std::optional<Tensor>& nonfinite_rows, void* stream) = 0;
  virtual void dequantize_activations(const ScaledTensor& q, const Tensor& out, void* stream) = 0;
  virtual void quantize_weights(const Tensor& w, const ScaledTensor& out, bool ue8m0, void* stream) = 0;
  virtual void dequantize_weights(const ScaledTensor& q, const Tensor& out, void* stream) = 0;

  virtual void gemm_dense(const ScaledTensor& a, const ScaledTensor& b, const Tensor& d, void* stream) = 0;
  virtual void gemm_contiguous(const ScaledTensor& a, const ScaledTensor& b, const Tensor& m_indices,
                               const Tensor& d, void* stream) = 0;
  virtual void gemm_offsets(const ScaledTensor& a, const ScaledTensor& b, const Tensor& offsets, const Tensor& d,
                            void* stream) = 0;
  virtual void gemm_masked(const ScaledTensor& a, const ScaledTensor& b, const Tensor& masked_m, int64_t expected_m,
                           const Tensor& d, void* stream) = 0;
  virtual std::unique_ptr<RoutedPlan> create_routed_plan(const RoutedPlanSpec& spec) = 0;

  virtual void interleave_gate_up(const Tensor& w, const Tensor& out, bool inverse, void* stream) = 0;

  virtual std::unique_ptr<MoeLayer> create_moe_layer(const MoeLayerSpec& spec, const MoeWeights& weights,
                                                     void* stream) = 0;
};

std::shared_ptr<Backend> make_cpu_backend();

// Throws Error(MEGAMOE_ERROR_BACKEND_UNAVAILABLE) with the reason when CUDA cannot be used.
std::shared_ptr<Backend> make_cuda_backend(int32_t device_id);
void check_cuda_available(int32_t device_id);

}  // namespace megamoe
