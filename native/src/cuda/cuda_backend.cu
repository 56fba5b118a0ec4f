// The CUDA (SM90) backend: availability checks, device memory, and the operations the kernels of
// this folder implement.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "core/backend.h"
#include "core/error.h"
#include "cuda/cuda_layers.h"
#include "cuda/cuda_utils.h"
#include "cuda/ep_kernels.h"
#include "cuda/sm90/gemm/gemm.h"
#include "cuda/transforms.h"

namespace megamoe {
namespace {

namespace sm90 = cuda::sm90;

std::string version_text(int v) { return cat(v / 1000, ".", (v % 1000) / 10); }

[[noreturn]] void unavailable(const std::string& reason) {
  throw Error(MEGAMOE_ERROR_BACKEND_UNAVAILABLE, cat("the CUDA backend is unavailable: ", reason));
}

// Checks everything up to the device's compute capability; returns its properties.
cudaDeviceProp probe_device(int32_t device_id) {
  int driver = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess || driver == 0) {
    (void)cudaGetLastError();
    unavailable("no CUDA driver is installed (libcuda.so.1 could not be loaded)");
  }
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    if (status == cudaErrorInsufficientDriver) {
      unavailable(cat("the CUDA driver (", version_text(driver), ") is older than the CUDA runtime MegaMoe was built with (",
                      version_text(CUDART_VERSION), "); update the NVIDIA driver"));
    }
    if (status == cudaErrorNoDevice) {
      const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
      unavailable(cat("no CUDA device is visible", visible != nullptr ? cat(" (CUDA_VISIBLE_DEVICES=", visible, ")") : ""));
    }
    unavailable(cat("cudaGetDeviceCount failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status)));
  }
  if (count == 0) unavailable("no CUDA device is visible");
  if (device_id < 0 || device_id >= count) {
    unavailable(cat("CUDA device ", device_id, " is out of range: ", count, " device(s) visible (valid ids 0..", count - 1, ")"));
  }
  cudaDeviceProp props{};
  const cudaError_t prop_status = cudaGetDeviceProperties(&props, device_id);
  if (prop_status != cudaSuccess) {
    (void)cudaGetLastError();
    unavailable(cat("cudaGetDeviceProperties(", device_id, ") failed: ", cudaGetErrorName(prop_status), ": ",
                    cudaGetErrorString(prop_status)));
  }
  if (props.major != 9 || props.minor != 0) {
    unavailable(cat("MegaMoe's CUDA kernels need an SM90 (Hopper: H100/H200) GPU, found sm_", props.major, props.minor,
                    " (", props.name, ") on device ", device_id));
  }
  return props;
}

// A cudaEvent_t of the backend's device (expert parallelism: loopback ordering, layer timings).
class CudaEvent final : public StreamEvent {
 public:
  CudaEvent(int device, bool timing) : device_(device) {
    cuda::DeviceGuard guard(device_);
    cuda::check(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming),
                "cudaEventCreateWithFlags");
  }
  ~CudaEvent() override { (void)cudaEventDestroy(event_); }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;

  void record(void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::check(cudaEventRecord(event_, cuda::as_stream(stream)), "cudaEventRecord");
  }
  void wait(void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::check(cudaStreamWaitEvent(cuda::as_stream(stream), event_, 0), "cudaStreamWaitEvent");
  }
  double elapsed_ms(StreamEvent& start) override {
    auto& from = dynamic_cast<CudaEvent&>(start);
    cuda::DeviceGuard guard(device_);
    cuda::check(cudaEventSynchronize(event_), "cudaEventSynchronize");
    float ms = 0.0f;
    cuda::check(cudaEventElapsedTime(&ms, from.event_, event_), "cudaEventElapsedTime");
    return ms;
  }

 private:
  int device_;
  cudaEvent_t event_ = nullptr;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(int32_t device, const cudaDeviceProp& props) : device_(device), props_(props) {
    limits_.device = device;
    limits_.num_sms = props.multiProcessorCount;
    int driver = 0, runtime = 0;
    (void)cudaDriverGetVersion(&driver);
    (void)cudaRuntimeGetVersion(&runtime);
    driver_version_ = driver;
    runtime_version_ = runtime;
  }

  megamoe_backend_t kind() const override { return MEGAMOE_BACKEND_CUDA; }
  Device device() const override { return Device{MEGAMOE_DEVICE_CUDA, device_}; }
  void set_num_threads(int32_t) override {}

  void device_info(megamoe_device_info_t& info) const override {
    info.backend = MEGAMOE_BACKEND_CUDA;
    info.device_id = device_;
    info.compute_capability_major = props_.major;
    info.compute_capability_minor = props_.minor;
    info.multiprocessor_count = props_.multiProcessorCount;
    info.driver_version = driver_version_;
    info.runtime_version = runtime_version_;
    info.total_memory_bytes = static_cast<int64_t>(props_.totalGlobalMem);
    info.l2_cache_bytes = props_.l2CacheSize;
    std::memset(info.name, 0, sizeof info.name);
    std::snprintf(info.name, sizeof info.name, "%s", props_.name);
  }

  void synchronize(void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::check(cudaStreamSynchronize(cuda::as_stream(stream)), "cudaStreamSynchronize");
  }

  void* allocate(int64_t bytes) override {
    cuda::DeviceGuard guard(device_);
    void* data = nullptr;
    const cudaError_t status = cudaMalloc(&data, static_cast<size_t>(bytes > 0 ? bytes : 1));
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      if (status == cudaErrorMemoryAllocation) {
        size_t free_bytes = 0, total_bytes = 0;
        (void)cudaMemGetInfo(&free_bytes, &total_bytes);
        (void)cudaGetLastError();
        throw Error(MEGAMOE_ERROR_OUT_OF_MEMORY, cat("cudaMalloc of ", bytes, " bytes failed on CUDA device ", device_,
                                                     " (", free_bytes, " of ", total_bytes, " bytes free)"));
      }
      cuda::throw_cuda_error(status, "cudaMalloc");
    }
    return data;
  }

  void deallocate(void* data) noexcept override {
    if (data == nullptr) return;
    int previous = 0;
    if (cudaGetDevice(&previous) == cudaSuccess && previous != device_) (void)cudaSetDevice(device_);
    (void)cudaFree(data);
    (void)cudaGetLastError();
    if (previous != device_) (void)cudaSetDevice(previous);
  }

  void write(void* device_dst, const void* host_src, int64_t bytes, void* stream) override {
    if (bytes <= 0) return;
    cuda::DeviceGuard guard(device_);
    const cudaStream_t s = cuda::as_stream(stream);
    cuda::check(cudaMemcpyAsync(device_dst, host_src, static_cast<size_t>(bytes), cudaMemcpyHostToDevice, s),
                "cudaMemcpyAsync (host to device)");
    cuda::check(cudaStreamSynchronize(s), "cudaStreamSynchronize after a buffer write");
  }

  void read(void* host_dst, const void* device_src, int64_t bytes, void* stream) override {
    if (bytes <= 0) return;
    cuda::DeviceGuard guard(device_);
    const cudaStream_t s = cuda::as_stream(stream);
    cuda::check(cudaMemcpyAsync(host_dst, device_src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, s),
                "cudaMemcpyAsync (device to host)");
    cuda::check(cudaStreamSynchronize(s), "cudaStreamSynchronize after a buffer read");
  }

  void fill(void* device_dst, uint8_t value, int64_t bytes, void* stream) override {
    if (bytes <= 0) return;
    cuda::DeviceGuard guard(device_);
    cuda::check(cudaMemsetAsync(device_dst, value, static_cast<size_t>(bytes), cuda::as_stream(stream)), "cudaMemsetAsync");
  }

  void quantize_activations(const Tensor& x, const ScaledTensor& out, bool ue8m0,
                            const std::optional<Tensor>& nonfinite_rows, void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::quantize_activations(x, out, ue8m0, nonfinite_rows ? nonfinite_rows->as<int32_t>() : nullptr,
                               cuda::as_stream(stream));
  }
  void dequantize_activations(const ScaledTensor& q, const Tensor& out, void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::dequantize_activations(q, out, cuda::as_stream(stream));
  }
  void quantize_weights(const Tensor& w, const ScaledTensor& out, bool ue8m0, void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::quantize_weights(w, out, ue8m0, cuda::as_stream(stream));
  }
  void dequantize_weights(const ScaledTensor& q, const Tensor& out, void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::dequantize_weights(q, out, cuda::as_stream(stream));
  }

  void gemm_dense(const ScaledTensor& a, const ScaledTensor& b, const Tensor& d, void* stream) override {
    sm90::GemmArgs args = gemm_args(sm90::GemmKind::Dense, a, b, d);
    args.params.layout.rows = static_cast<uint32_t>(a.data.dim(0));
    run(args, stream);
  }
  void gemm_contiguous(const ScaledTensor& a, const ScaledTensor& b, const Tensor& m_indices, const Tensor& d,
                       void* stream) override {
    sm90::GemmArgs args = gemm_args(sm90::GemmKind::Contiguous, a, b, d);
    args.params.layout.rows = static_cast<uint32_t>(a.data.dim(0));
    args.params.layout.groups_data = m_indices.data;
    run(args, stream);
  }
  void gemm_offsets(const ScaledTensor& a, const ScaledTensor& b, const Tensor& offsets, const Tensor& d,
                    void* stream) override {
    sm90::GemmArgs args = gemm_args(sm90::GemmKind::Offsets, a, b, d);
    args.params.layout.rows = static_cast<uint32_t>(a.data.dim(0));
    args.params.layout.groups_data = offsets.data;
    args.params.layout.groups_int64 = offsets.dtype == MEGAMOE_DTYPE_INT64;
    run(args, stream);
  }
  void gemm_masked(const ScaledTensor& a, const ScaledTensor& b, const Tensor& masked_m, int64_t expected_m,
                   const Tensor& d, void* stream) override {
    sm90::GemmArgs args = gemm_args(sm90::GemmKind::Masked, a, b, d);
    args.params.layout.max_m = static_cast<uint32_t>(a.data.dim(1));
    args.params.layout.rows = static_cast<uint32_t>(a.data.dim(0) * a.data.dim(1));
    args.params.layout.groups_data = masked_m.data;
    args.expected_m = expected_m;
    run(args, stream);
  }

  std::unique_ptr<RoutedPlan> create_routed_plan(const RoutedPlanSpec& spec) override {
    cuda::DeviceGuard guard(device_);
    return cuda::make_routed_plan(limits_, spec);
  }

  void interleave_gate_up(const Tensor& w, const Tensor& out, bool inverse, void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::interleave_gate_up(w, out, inverse, cuda::as_stream(stream));
  }

  std::unique_ptr<MoeLayer> create_moe_layer(const MoeLayerSpec& spec, const MoeWeights& weights, void* stream) override {
    return cuda::make_moe_layer(limits_, spec, weights, stream);
  }

  // Expert parallelism (cuda/ep_kernels.cu); the layers write FP32 y on request.
  void check_expert_parallel() const override {}
  void copy(void* device_dst, const void* device_src, int64_t bytes, void* stream) override {
    if (bytes <= 0) return;
    cuda::DeviceGuard guard(device_);
    // cudaMemcpyDefault: the loopback copies between the buffers of ranks that may sit on other devices.
    cuda::check(cudaMemcpyAsync(device_dst, device_src, static_cast<size_t>(bytes), cudaMemcpyDefault,
                                cuda::as_stream(stream)),
                "cudaMemcpyAsync (device to device)");
  }
  std::unique_ptr<StreamEvent> create_event(bool timing) override { return std::make_unique<CudaEvent>(device_, timing); }
  void ep_pack(const EpPackArgs& args, void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::ep_pack(args, limits_, cuda::as_stream(stream));
  }
  void ep_unpack(const EpUnpackArgs& args, void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::ep_unpack(args, limits_, cuda::as_stream(stream));
  }
  void ep_unpack_expanded(const EpUnpackExpandedArgs& args, void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::ep_unpack_expanded(args, limits_, cuda::as_stream(stream));
  }
  void ep_return(const EpReturnArgs& args, void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::ep_return(args, limits_, cuda::as_stream(stream));
  }
  void ep_combine(const EpCombineArgs& args, void* stream) override {
    cuda::DeviceGuard guard(device_);
    cuda::ep_combine(args, limits_, cuda::as_stream(stream));
  }

 private:
  static sm90::GemmArgs gemm_args(sm90::GemmKind kind, const ScaledTensor& a, const ScaledTensor& b, const Tensor& d) {
    sm90::GemmArgs args;
    args.kind = kind;
    args.b = b.data.data;
    args.params.op.a = a.data.as<const uint8_t>();
    args.params.op.sfa = a.scales.as<const float>();
    args.params.op.sfb = b.scales.as<const float>();
    args.params.op.d = d.as<__nv_bfloat16>();
    const int32_t r = b.data.rank;
    args.params.layout.n = static_cast<uint32_t>(b.data.dim(r - 2));
    args.params.layout.k = static_cast<uint32_t>(b.data.dim(r - 1));
    args.params.layout.groups = r == 3 ? static_cast<uint32_t>(b.data.dim(0)) : 1;
    return args;
  }

  void run(const sm90::GemmArgs& args, void* stream) {
    if (args.params.layout.rows == 0) return;
    cuda::DeviceGuard guard(device_);
    sm90::gemm(args, limits_, cuda::as_stream(stream));
  }

  int32_t device_;
  cudaDeviceProp props_;
  cuda::DeviceLimits limits_;
  int32_t driver_version_ = 0;
  int32_t runtime_version_ = 0;
};

}  // namespace

void check_cuda_available(int32_t device_id) { (void)probe_device(device_id); }

std::shared_ptr<Backend> make_cuda_backend(int32_t device_id) {
  const cudaDeviceProp props = probe_device(device_id);
  return std::make_shared<CudaBackend>(device_id, props);
}

}  // namespace megamoe
