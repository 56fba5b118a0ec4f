// The exact CPU reference backend: host memory, synchronous calls on the calling thread plus a
// persistent worker pool, results bitwise independent of the thread count.
#pragma once

#include <memory>

#include "core/backend.h"
#include "cpu/thread_pool.h"

namespace megamoe::cpu {

class CpuBackend final : public Backend {
 public:
  CpuBackend();

  megamoe_backend_t kind() const override { return MEGAMOE_BACKEND_CPU; }
  Device device() const override { return Device{MEGAMOE_DEVICE_CPU, 0}; }
  void set_num_threads(int32_t num_threads) override;
  void device_info(megamoe_device_info_t& info) const override;
  void synchronize(void* /*stream*/) override {}

  void* allocate(int64_t bytes) override;
  void deallocate(void* data) noexcept override;
  void write(void* device_dst, const void* host_src, int64_t bytes, void* stream) override;
  void read(void* host_dst, const void* device_src, int64_t bytes, void* stream) override;
  void fill(void* device_dst, uint8_t value, int64_t bytes, void* stream) override;

  void quantize_activations(const Tensor& x, const ScaledTensor& out, bool ue8m0,
                            const std::optional<Tensor>& nonfinite_rows, void* stream) override;
  void dequantize_activations(const ScaledTensor& q, const Tensor& out, void* stream) override;
  void quantize_weights(const Tensor& w, const ScaledTensor& out, bool ue8m0, void* stream) override;
  void dequantize_weights(const ScaledTensor& q, const Tensor& out, void* stream) override;

  void gemm_dense(const ScaledTensor& a, const ScaledTensor& b, const Tensor& d, void* stream) override;
  void gemm_contiguous(const ScaledTensor& a, const ScaledTensor& b, const Tensor& m_indices, const Tensor& d,
                       void* stream) override;
  void gemm_offsets(const ScaledTensor& a, const ScaledTensor& b, const Tensor& offsets, const Tensor& d,
                    void* stream) override;
  void gemm_masked(const ScaledTensor& a, const ScaledTensor& b, const Tensor& masked_m, int64_t expected_m,
                   const Tensor& d, void* stream) override;
  std::unique_ptr<RoutedPlan> create_routed_plan(const RoutedPlanSpec& spec) override;

  void interleave_gate_up(const Tensor& w, const Tensor& out, bool inverse, void* stream) override;

  std::unique_ptr<MoeLayer> create_moe_layer(const MoeLayerSpec& spec, const MoeWeights& weights,
                                             void* stream) override;

  void check_expert_parallel() const override {}
  void copy(void* device_dst, const void* device_src, int64_t bytes, void* stream) override;
  std::unique_ptr<StreamEvent> create_event(bool timing) override;
  void ep_pack(const EpPackArgs& args, void* stream) override;
  void ep_unpack(const EpUnpackArgs& args, void* stream) override;
  void ep_unpack_expanded(const EpUnpackExpandedArgs& args, void* stream) override;
  void ep_return(const EpReturnArgs& args, void* stream) override;
  void ep_combine(const EpCombineArgs& args, void* stream) override;

 private:
  // Shared with plans and layers, which may outlive a call but never the pool's last user.
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace megamoe::cpu
