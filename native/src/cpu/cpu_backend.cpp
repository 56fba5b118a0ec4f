#include "cpu/cpu_backend.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "cpu/aligned_buffer.h"
#include "cpu/block_scaled_dot.h"
#include "cpu/ep_kernels.h"
#include "cpu/gemm.h"
#include "cpu/interleave.h"
#include "cpu/moe_layer.h"
#include "cpu/quantize.h"
#include "cpu/routed_plan.h"

namespace megamoe {

namespace cpu {

namespace {

int64_t system_value(int name) {
  const long value = sysconf(name);
  return value > 0 ? static_cast<int64_t>(value) : 0;
}

}  // namespace

CpuBackend::CpuBackend() : pool_(std::make_shared<ThreadPool>(0)) {}

void CpuBackend::set_num_threads(int32_t num_threads) { pool_->resize(num_threads); }

void CpuBackend::device_info(megamoe_device_info_t& info) const {
  info.backend = MEGAMOE_BACKEND_CPU;
  info.device_id = 0;
  info.compute_capability_major = 0;
  info.compute_capability_minor = 0;
  info.multiprocessor_count = pool_->size();
  info.driver_version = 0;
  info.runtime_version = 0;
  info.total_memory_bytes = system_value(_SC_PHYS_PAGES) * system_value(_SC_PAGE_SIZE);
#ifdef _SC_LEVEL2_CACHE_SIZE
  info.l2_cache_bytes = system_value(_SC_LEVEL2_CACHE_SIZE);
#else
  info.l2_cache_bytes = 0;
#endif
  std::snprintf(info.name, sizeof info.name, "CPU (%d threads, %s)", static_cast<int>(pool_->size()), dot_isa_name());
}

void* CpuBackend::allocate(int64_t bytes) { return aligned_allocate(bytes); }

void CpuBackend::deallocate(void* data) noexcept { aligned_free(data); }

void CpuBackend::write(void* device_dst, const void* host_src, int64_t bytes, void* /*stream*/) {
  if (bytes > 0) std::memcpy(device_dst, host_src, static_cast<size_t>(bytes));
}

void CpuBackend::read(void* host_dst, const void* device_src, int64_t bytes, void* /*stream*/) {
  if (bytes > 0) std::memcpy(host_dst, device_src, static_cast<size_t>(bytes));
}

void CpuBackend::fill(void* device_dst, uint8_t value, int64_t bytes, void* /*stream*/) {
  if (bytes > 0) std::memset(device_dst, value, static_cast<size_t>(bytes));
}

void CpuBackend::quantize_activations(const Tensor& x, const ScaledTensor& out, bool ue8m0,
                                      const std::optional<Tensor>& nonfinite_rows, void* /*stream*/) {
  cpu::quantize_activations(*pool_, x, out, ue8m0, nonfinite_rows ? nonfinite_rows->as<int32_t>() : nullptr);
}

void CpuBackend::dequantize_activations(const ScaledTensor& q, const Tensor& out, void* /*stream*/) {
  cpu::dequantize_activations(*pool_, q, out);
}

void CpuBackend::quantize_weights(const Tensor& w, const ScaledTensor& out, bool ue8m0, void* /*stream*/) {
  cpu::quantize_weights(*pool_, w, out, ue8m0);
}

void CpuBackend::dequantize_weights(const ScaledTensor& q, const Tensor& out, void* /*stream*/) {
  cpu::dequantize_weights(*pool_, q, out);
}

void CpuBackend::gemm_dense(const ScaledTensor& a, const ScaledTensor& b, const Tensor& d, void* /*stream*/) {
  cpu::gemm_dense(*pool_, a, b, d);
}

void CpuBackend::gemm_contiguous(const ScaledTensor& a, const ScaledTensor& b, const Tensor& m_indices,
                                 const Tensor& d, void* /*stream*/) {
  cpu::gemm_contiguous(*pool_, a, b, m_indices, d);
}

void CpuBackend::gemm_offsets(const ScaledTensor& a, const ScaledTensor& b, const Tensor& offsets, const Tensor& d,
                              void* /*stream*/) {
  cpu::gemm_offsets(*pool_, a, b, offsets, d);
}

// expected_m only steers GPU kernel choice; the CPU needs no hint.
void CpuBackend::gemm_masked(const ScaledTensor& a, const ScaledTensor& b, const Tensor& masked_m,
                             int64_t /*expected_m*/, const Tensor& d, void* /*stream*/) {
  cpu::gemm_masked(*pool_, a, b, masked_m, d);
}

std::unique_ptr<RoutedPlan> CpuBackend::create_routed_plan(const RoutedPlanSpec& spec) {
  return make_cpu_routed_plan(pool_, spec);
}

void CpuBackend::interleave_gate_up(const Tensor& w, const Tensor& out, bool inverse, void* /*stream*/) {
  cpu::interleave_gate_up(*pool_, w, out, inverse);
}

std::unique_ptr<MoeLayer> CpuBackend::create_moe_layer(const MoeLayerSpec& spec, const MoeWeights& weights,
                                                       void* /*stream*/) {
  return make_cpu_moe_layer(pool_, spec, weights);
}

void CpuBackend::copy(void* device_dst, const void* device_src, int64_t bytes, void* /*stream*/) {
  if (bytes > 0) std::memcpy(device_dst, device_src, static_cast<size_t>(bytes));
}

std::unique_ptr<StreamEvent> CpuBackend::create_event(bool /*timing*/) { return make_host_clock_event(); }

void CpuBackend::ep_pack(const EpPackArgs& args, void* /*stream*/) { cpu::ep_pack(*pool_, args); }

void CpuBackend::ep_unpack(const EpUnpackArgs& args, void* /*stream*/) { cpu::ep_unpack(*pool_, args); }

void CpuBackend::ep_unpack_expanded(const EpUnpackExpandedArgs& args, void* /*stream*/) {
  cpu::ep_unpack_expanded(*pool_, args);
}

void CpuBackend::ep_return(const EpReturnArgs& args, void* /*stream*/) { cpu::ep_return(*pool_, args); }

void CpuBackend::ep_combine(const EpCombineArgs& args, void* /*stream*/) { cpu::ep_combine(*pool_, args); }

}  // namespace cpu

std::shared_ptr<Backend> make_cpu_backend() { return std::make_shared<cpu::CpuBackend>(); }

}  // namespace megamoe
