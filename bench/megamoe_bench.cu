// MegaMoe benchmark harness: times the CUDA backend through the public C API on DeepSeek-V3-shaped
// GEMMs and MoE layers (the shapes and peer numbers of bench/NOTES.md), with a cuBLASLt FP8
// (per-tensor scale) GEMM of equal FLOPs as the same-run baseline, and writes
// bench/results/<date>-<card>.json:
//   {commit, card, cuda, date, results: [{name, median_us, tflops, gbps, baseline_tflops, ...}],
//    geomean_vs_cublaslt}
// Protocol: inputs are random (never zeros), L2 is flushed (256 MiB memset) before every timed run,
// each run is bracketed by CUDA events, the median of --reps runs is reported after 3 warm-ups.
//
//   megamoe_bench [--out DIR] [--filter SUBSTRING[,SUBSTRING...]] [--reps N] [--commit SHA] [--sweep]
// The routed, expert-specialization and MoE-layer cases (routed_moe_cases.cuh) add a same-run
// reference of their own ("reference" in the JSON).
#include <cublasLt.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "cuda/sm90/gemm/heuristics.h"
#include "megamoe/megamoe.h"

namespace {

#define CUDA_OK(call)                                                                                  \
  do {                                                                                                 \
    cudaError_t e_ = (call);                                                                           \
    if (e_ != cudaSuccess) {                                                                           \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));      \
      std::exit(2);                                                                                    \
    }                                                                                                  \
  } while (0)
#define MM_OK(call)                                                                                    \
  do {                                                                                                 \
    megamoe_status_t s_ = (call);                                                                      \
    if (s_ != MEGAMOE_SUCCESS) {                                                                       \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, megamoe_last_error_message()); \
      std::exit(3);                                                                                    \
    }                                                                                                  \
  } while (0)
#define LT_OK(call)                                                                                    \
  do {                                                                                                 \
    cublasStatus_t s_ = (call);                                                                        \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                                 \
      std::fprintf(stderr, "%s:%d %s: cublas status %d\n", __FILE__, __LINE__, #call, (int)s_);       \
      std::exit(4);                                                                                    \
    }                                                                                                  \
  } while (0)

// ---------------------------------------------------------------------------------------------
// Random device data
// ---------------------------------------------------------------------------------------------
__device__ uint32_t hash32(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return static_cast<uint32_t>(x);
}
// FP8 codes of values in about +-[2^-3, 2^5) (exponents 4..11), random sign and mantissa.
__global__ void fill_fp8(uint8_t* p, uint64_t n, uint64_t seed) {
  for (uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; i < n; i += uint64_t{gridDim.x} * blockDim.x) {
    const uint32_t h = hash32(i * 0x9E3779B97F4A7C15ull + seed);
    p[i] = static_cast<uint8_t>((h & 0x80u) | ((4u + (h >> 8) % 8u) << 3) | ((h >> 16) & 7u));
  }
}
__global__ void fill_float(float* p, uint64_t n, uint64_t seed, float lo, float hi) {
  for (uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; i < n; i += uint64_t{gridDim.x} * blockDim.x) {
    p[i] = lo + (hi - lo) * (hash32(i + seed) * (1.0f / 4294967296.0f));
  }
}
__global__ void fill_bf16(uint16_t* p, uint64_t n, uint64_t seed) {
  for (uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; i < n; i += uint64_t{gridDim.x} * blockDim.x) {
    const float v = (hash32(i + seed) * (1.0f / 4294967296.0f) - 0.5f) * 4.0f;
    uint32_t bits;
    memcpy(&bits, &v, 4);
    p[i] = static_cast<uint16_t>(bits >> 16);
  }
}
// The least a launch can cost: the host overhead case's floor.
__global__ void empty_kernel() {}

__global__ void fill_int32(int32_t* p, uint64_t n, int32_t value) {
  for (uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; i < n; i += uint64_t{gridDim.x} * blockDim.x) {
    p[i] = value;
  }
}

struct DevMem {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DevMem(size_t b) : bytes(b) { CUDA_OK(cudaMalloc(&p, b > 0 ? b : 16)); }
  ~DevMem() { cudaFree(p); }
  DevMem(const DevMem&) = delete;
  DevMem& operator=(const DevMem&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

uint64_t g_seed = 12345;
void random_fp8(DevMem& m) { fill_fp8<<<1024, 256>>>(m.as<uint8_t>(), m.bytes, g_seed++ * 1000003ull); }
void random_scales(DevMem& m) {
  fill_float<<<1024, 256>>>(m.as<float>(), m.bytes / 4, g_seed++ * 7919ull, 1.0e-3f, 4.0e-3f);
}

megamoe_tensor_t tensor(const void* data, megamoe_dtype_t dtype, std::vector<int64_t> shape) {
  megamoe_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = const_cast<void*>(data);
  t.device_type = MEGAMOE_DEVICE_CUDA;
  t.device_id = 0;
  t.dtype = dtype;
  t.rank = static_cast<int32_t>(shape.size());
  int64_t stride = 1;
  for (int i = t.rank - 1; i >= 0; --i) {
    t.shape[i] = shape[i];
    t.strides[i] = stride;
    stride *= shape[i];
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------------
struct Timer {
  DevMem flush{size_t{256} << 20};
  cudaEvent_t start{}, stop{};
  int reps = 20;
  Timer() {
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreate(&stop));
  }
  // Median microseconds of fn() over `reps` runs, each after an L2 flush.
  double median_us(const std::function<void()>& fn) {
    for (int i = 0; i < 3; ++i) fn();
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<double> us;
    for (int i = 0; i < reps; ++i) {
      CUDA_OK(cudaMemsetAsync(flush.p, i & 0xFF, flush.bytes));
      CUDA_OK(cudaEventRecord(start));
      fn();
      CUDA_OK(cudaEventRecord(stop));
      CUDA_OK(cudaEventSynchronize(stop));
      float ms = 0;
      CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
      us.push_back(ms * 1000.0);
    }
    CUDA_OK(cudaGetLastError());
    return median(us);
  }

  static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }

  // What one eager call costs the caller (no L2 flush: the data stays hot, as in a decode loop):
  // api_us, the host time inside the call; sync_us, call + stream synchronize; pipelined_us, the
  // wall time per call of 100 calls back to back; kernel_us, the same calls' device time by events.
  struct Eager {
    double api_us, sync_us, pipelined_us, kernel_us;
  };
  Eager eager(const std::function<void()>& fn) {
    using clock = std::chrono::steady_clock;
    const auto us_between = [](clock::time_point a, clock::time_point b) {
      return std::chrono::duration<double, std::micro>(b - a).count();
    };
    for (int i = 0; i < 5; ++i) fn();
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<double> api, sync, kernel, pipelined;
    for (int i = 0; i < reps; ++i) {
      const auto t0 = clock::now();
      fn();
      const auto t1 = clock::now();
      CUDA_OK(cudaStreamSynchronize(nullptr));
      const auto t2 = clock::now();
      api.push_back(us_between(t0, t1));
      sync.push_back(us_between(t0, t2));
    }
    for (int i = 0; i < reps; ++i) {
      CUDA_OK(cudaEventRecord(start));
      fn();
      CUDA_OK(cudaEventRecord(stop));
      CUDA_OK(cudaEventSynchronize(stop));
      float ms = 0;
      CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
      kernel.push_back(ms * 1000.0);
    }
    for (int i = 0; i < 5; ++i) {
      constexpr int kCalls = 100;
      const auto t0 = clock::now();
      for (int c = 0; c < kCalls; ++c) fn();
      CUDA_OK(cudaStreamSynchronize(nullptr));
      pipelined.push_back(us_between(t0, clock::now()) / kCalls);
    }
    CUDA_OK(cudaGetLastError());
    return {median(api), median(sync), median(pipelined), median(kernel)};
  }
};

// ---------------------------------------------------------------------------------------------
// cuBLASLt FP8 GEMM with per-tensor scales: D [M, N] bf16 = A [M, K] . B [N, K]^T (row-major),
// i.e. column-major D^T [N, M] = op(B)^T... computed as (TN) with m = N, n = M.
// ---------------------------------------------------------------------------------------------
// One cuBLASLt problem, set up once: run() enqueues the GEMM on the legacy stream.
class CublasGemm {
 public:
  CublasGemm(cublasLtHandle_t handle, const DevMem& workspace, const DevMem& scales, int64_t m, int64_t n, int64_t k)
      : handle_(handle), workspace_(workspace), a_(size_t(m * k)), b_(size_t(n * k)), d_(size_t(m * n * 2)) {
    random_fp8(a_);
    random_fp8(b_);
    LT_OK(cublasLtMatmulDescCreate(&op_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_OK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_OK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    const float* sp = scales.as<float>();
    LT_OK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sp, sizeof sp));
    LT_OK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sp, sizeof sp));
    // Column-major views: A_cm = B_row [K, N] (op T -> N x K); B_cm = A_row [K, M]; D_cm [N, M].
    LT_OK(cublasLtMatrixLayoutCreate(&la_, CUDA_R_8F_E4M3, k, n, k));
    LT_OK(cublasLtMatrixLayoutCreate(&lb_, CUDA_R_8F_E4M3, k, m, k));
    LT_OK(cublasLtMatrixLayoutCreate(&lc_, CUDA_R_16BF, n, m, n));
    LT_OK(cublasLtMatrixLayoutCreate(&ld_, CUDA_R_16BF, n, m, n));
    cublasLtMatmulPreference_t pref{};
    LT_OK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = workspace_.bytes;
    LT_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    int found = 0;
    const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(handle_, op_, la_, lb_, lc_, ld_, pref, 1, &result_, &found);
    ok_ = hs == CUBLAS_STATUS_SUCCESS && found > 0;
    cublasLtMatmulPreferenceDestroy(pref);
  }
  ~CublasGemm() {
    cublasLtMatrixLayoutDestroy(la_);
    cublasLtMatrixLayoutDestroy(lb_);
    cublasLtMatrixLayoutDestroy(lc_);
    cublasLtMatrixLayoutDestroy(ld_);
    cublasLtMatmulDescDestroy(op_);
  }
  CublasGemm(const CublasGemm&) = delete;
  CublasGemm& operator=(const CublasGemm&) = delete;

  // False when cuBLASLt offers no algorithm for the problem.
  bool ok() const { return ok_; }
  void run() {
    const float alpha = 1.0f, beta = 0.0f;
    LT_OK(cublasLtMatmul(handle_, op_, &alpha, b_.p, la_, a_.p, lb_, &beta, d_.p, lc_, d_.p, ld_, &result_.algo,
                         workspace_.p, workspace_.bytes, nullptr));
  }

 private:
  cublasLtHandle_t handle_;
  const DevMem& workspace_;
  DevMem a_, b_, d_;
  cublasLtMatmulDesc_t op_{};
  cublasLtMatrixLayout_t la_{}, lb_{}, lc_{}, ld_{};
  cublasLtMatmulHeuristicResult_t result_{};
  bool ok_ = false;
};

struct CublasFp8 {
  cublasLtHandle_t handle{};
  DevMem workspace{size_t{64} << 20};
  DevMem scales{16};
  CublasFp8() {
    LT_OK(cublasLtCreate(&handle));
    const float one[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    CUDA_OK(cudaMemcpy(scales.p, one, sizeof one, cudaMemcpyHostToDevice));
  }
  ~CublasFp8() { cublasLtDestroy(handle); }

  // Returns median microseconds, or -1 when cuBLASLt offers no algorithm.
  double time(Timer& timer, int64_t m, int64_t n, int64_t k) {
    CublasGemm gemm(handle, workspace, scales, m, n, k);
    return gemm.ok() ? timer.median_us([&] { gemm.run(); }) : -1.0;
  }
};

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------
struct Result {
  std::string name;
  double median_us = 0, tflops = 0, gbps = 0, baseline_tflops = -1, baseline_gbps = -1;
  // A same-run reference other than cuBLASLt (routed/es/moe cases): its name, value and unit.
  std::string ref_name, ref_unit;
  double ref_value = -1;
  // Further named numbers of a case (host-overhead timings, active weight bytes...), in the JSON.
  std::vector<std::pair<std::string, double>> extra;
};

void print_result(const Result& r) {
  std::printf("%-44s %10.1f us %8.1f TFLOPS %8.1f GB/s", r.name.c_str(), r.median_us, r.tflops, r.gbps);
  if (r.baseline_tflops > 0) std::printf("   cuBLASLt %7.1f TFLOPS (x%.2f)", r.baseline_tflops, r.tflops / r.baseline_tflops);
  if (r.baseline_gbps > 0) std::printf("   copy %7.1f GB/s (%.0f%%)", r.baseline_gbps, 100.0 * r.gbps / r.baseline_gbps);
  if (r.ref_value > 0) {
    const double mine = r.ref_unit == "us" ? r.median_us : r.ref_unit == "GB/s" ? r.gbps : r.tflops;
    const double ratio = r.ref_unit == "us" ? r.ref_value / mine : mine / r.ref_value;
    std::printf("   %s %.1f %s (x%.2f)", r.ref_name.c_str(), r.ref_value, r.ref_unit.c_str(), ratio);
  }
  for (const auto& [key, value] : r.extra) std::printf("   %s %.2f", key.c_str(), value);
  std::printf("\n");
  std::fflush(stdout);
}

struct Bench {
  megamoe_context_t ctx{};
  Timer timer;
  CublasFp8 cublas;
  std::string filter;
  std::vector<Result> results;

  bool sweep = false;  // also time every tile configuration (log only; the JSON keeps the heuristic's)

  // Geometric mean of ours / cuBLASLt over the dense and contiguous cases (the GEMM speed target).
  double geomean_vs_cublaslt() const {
    double log_sum = 0;
    int count = 0;
    for (const Result& r : results) {
      const bool gemm = r.name.rfind("dense/", 0) == 0 || r.name.rfind("contiguous/", 0) == 0;
      if (gemm && r.baseline_tflops > 0 && r.tflops > 0) log_sum += std::log(r.tflops / r.baseline_tflops), ++count;
    }
    return count > 0 ? std::exp(log_sum / count) : 0.0;
  }

  // filter: comma-separated substrings, any of which selects a case.
  bool wanted(const std::string& name) const {
    if (filter.empty()) return true;
    for (size_t start = 0; start <= filter.size();) {
      const size_t comma = filter.find(',', start);
      const std::string part = filter.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!part.empty() && name.find(part) != std::string::npos) return true;
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return false;
  }

  // Times fn() with each instantiated plain-layout tile forced (MEGAMOE_CUDA_GEMM_TILE) and prints the
  // table; dense problems also with every split-K of each tile ("BMxBNx1xS").
  void sweep_tiles(const std::string& name, double flops, const std::function<void()>& fn, bool dense = false) {
    if (!sweep) return;
    namespace sm90 = megamoe::cuda::sm90;
    const auto time_tile = [&](const std::string& tile) {
      setenv("MEGAMOE_CUDA_GEMM_TILE", tile.c_str(), 1);
      const double us = timer.median_us(fn);
      std::printf("  sweep %-40s %-10s %10.1f us %8.1f TFLOPS\n", name.c_str(), tile.c_str(), us, flops / us * 1e-6);
    };
    for (const sm90::GemmVariant& v : sm90::kGemmVariants) {
      const std::string tile =
          std::to_string(v.block_m) + "x" + std::to_string(v.block_n) + "x" + std::to_string(v.multicast);
      // The dense tiles; a layout without one of them (192 rows for contiguous) runs the model's choice.
      if (v.kind == sm90::GemmKind::Dense) time_tile(dense ? tile + "x1" : tile);
      if (v.kind != sm90::GemmKind::SplitK || !dense) continue;
      for (uint32_t splits = 2; splits <= sm90::kGemmMaxKSplits; splits *= 2) {
        if (sm90::gemm_split_allowed(v.block_m, v.block_n, splits)) time_tile(tile + "x" + std::to_string(splits));
      }
    }
    unsetenv("MEGAMOE_CUDA_GEMM_TILE");
    std::fflush(stdout);
  }

  void gemm_result(const std::string& name, double flops, double bytes, int64_t baseline_m, int64_t n, int64_t k,
                   double us) {
    Result r;
    r.name = name;
    r.median_us = us;
    r.tflops = flops / us * 1e-6;
    r.gbps = bytes / us * 1e-3;
    const double base_us = cublas.time(timer, baseline_m, n, k);
    if (base_us > 0) r.baseline_tflops = 2.0 * baseline_m * n * k / base_us * 1e-6;
    print_result(r);
    results.push_back(r);
  }

  // Host overhead of an eager dense GEMM, MegaMoe vs cuBLASLt on the same shape (host/...).
  void eager_dense(int64_t m, int64_t n, int64_t k) {
    const std::string name = "host/dense_m" + std::to_string(m) + "_n" + std::to_string(n) + "_k" + std::to_string(k);
    if (!wanted(name)) return;
    DevMem a(m * k), sa(m * (k / 128) * 4), b(n * k), sb((n / 128) * (k / 128) * 4), d(m * n * 2);
    random_fp8(a), random_scales(sa), random_fp8(b), random_scales(sb);
    const auto at = tensor(a.p, MEGAMOE_DTYPE_FP8_E4M3, {m, k}), sat = tensor(sa.p, MEGAMOE_DTYPE_FP32, {m, k / 128});
    const auto bt = tensor(b.p, MEGAMOE_DTYPE_FP8_E4M3, {n, k}), sbt = tensor(sb.p, MEGAMOE_DTYPE_FP32, {n / 128, k / 128});
    const auto dt = tensor(d.p, MEGAMOE_DTYPE_BF16, {m, n});
    const Timer::Eager mine = timer.eager([&] { MM_OK(megamoe_gemm_dense(ctx, &at, &sat, &bt, &sbt, &dt, nullptr)); });
    CublasGemm lt(cublas.handle, cublas.workspace, cublas.scales, m, n, k);
    const Timer::Eager base = lt.ok() ? timer.eager([&] { lt.run(); }) : Timer::Eager{-1, -1, -1, -1};
    // The same measures of an empty kernel: the launch + synchronize floor every library pays, so the
    // rows above it are what a call adds (the issue's "within 2 us of kernel time" is measured against it).
    const Timer::Eager empty = timer.eager([] { empty_kernel<<<1, 32>>>(); });
    Result r;
    r.name = name;
    r.median_us = mine.sync_us;
    r.tflops = 2.0 * m * n * k / mine.kernel_us * 1e-6;
    r.extra = {{"api_us", mine.api_us},           {"sync_us", mine.sync_us},
               {"pipelined_us", mine.pipelined_us}, {"kernel_us", mine.kernel_us},
               {"sync_minus_kernel_us", mine.sync_us - mine.kernel_us},
               {"cublaslt_api_us", base.api_us},  {"cublaslt_sync_us", base.sync_us},
               {"cublaslt_pipelined_us", base.pipelined_us}, {"cublaslt_kernel_us", base.kernel_us},
               {"cublaslt_sync_minus_kernel_us", base.sync_us - base.kernel_us},
               {"empty_kernel_api_us", empty.api_us}, {"empty_kernel_sync_us", empty.sync_us},
               {"empty_kernel_sync_minus_kernel_us", empty.sync_us - empty.kernel_us}};
    print_result(r);
    results.push_back(r);
  }

  void dense(int64_t m, int64_t n, int64_t k) {
    const std::string name = "dense/m" + std::to_string(m) + "_n" + std::to_string(n) + "_k" + std::to_string(k);
    if (!wanted(name)) return;
    DevMem a(m * k), sa(m * (k / 128) * 4), b(n * k), sb((n / 128) * (k / 128) * 4), d(m * n * 2);
    random_fp8(a), random_scales(sa), random_fp8(b), random_scales(sb);
    const auto at = tensor(a.p, MEGAMOE_DTYPE_FP8_E4M3, {m, k}), sat = tensor(sa.p, MEGAMOE_DTYPE_FP32, {m, k / 128});
    const auto bt = tensor(b.p, MEGAMOE_DTYPE_FP8_E4M3, {n, k}), sbt = tensor(sb.p, MEGAMOE_DTYPE_FP32, {n / 128, k / 128});
    const auto dt = tensor(d.p, MEGAMOE_DTYPE_BF16, {m, n});
    const auto run = [&] { MM_OK(megamoe_gemm_dense(ctx, &at, &sat, &bt, &sbt, &dt, nullptr)); };
    const double us = timer.median_us(run);
    gemm_result(name, 2.0 * m * n * k, double(m * k + n * k + m * n * 2), m, n, k, us);
    sweep_tiles(name, 2.0 * m * n * k, run, true);
  }

  void contiguous(int64_t g, int64_t m_per_group, int64_t n, int64_t k) {
    const std::string name = "contiguous/g" + std::to_string(g) + "_m" + std::to_string(m_per_group) + "_n" +
                             std::to_string(n) + "_k" + std::to_string(k);
    if (!wanted(name)) return;
    const int64_t m = g * m_per_group;
    DevMem a(m * k), sa(m * (k / 128) * 4), b(g * n * k), sb(g * (n / 128) * (k / 128) * 4), d(m * n * 2), idx(m * 4);
    random_fp8(a), random_scales(sa), random_fp8(b), random_scales(sb);
    for (int64_t e = 0; e < g; ++e) fill_int32<<<64, 256>>>(idx.as<int32_t>() + e * m_per_group, m_per_group, int32_t(e));
    const auto at = tensor(a.p, MEGAMOE_DTYPE_FP8_E4M3, {m, k}), sat = tensor(sa.p, MEGAMOE_DTYPE_FP32, {m, k / 128});
    const auto bt = tensor(b.p, MEGAMOE_DTYPE_FP8_E4M3, {g, n, k});
    const auto sbt = tensor(sb.p, MEGAMOE_DTYPE_FP32, {g, n / 128, k / 128});
    const auto it = tensor(idx.p, MEGAMOE_DTYPE_INT32, {m});
    const auto dt = tensor(d.p, MEGAMOE_DTYPE_BF16, {m, n});
    const auto run = [&] { MM_OK(megamoe_gemm_grouped_contiguous(ctx, &at, &sat, &bt, &sbt, &it, &dt, nullptr)); };
    const double us = timer.median_us(run);
    gemm_result(name, 2.0 * m * n * k, double(m * k + g * n * k + m * n * 2), m, n, k, us);
    sweep_tiles(name, 2.0 * m * n * k, run);
  }

  void masked(int64_t g, int64_t expected_m, int64_t n, int64_t k) {
    const std::string name = "masked/g" + std::to_string(g) + "_m" + std::to_string(expected_m) + "_n" +
                             std::to_string(n) + "_k" + std::to_string(k);
    if (!wanted(name)) return;
    const int64_t max_m = (expected_m + 127) / 128 * 128;
    const int64_t rows = g * max_m;
    DevMem a(rows * k), sa(rows * (k / 128) * 4), b(g * n * k), sb(g * (n / 128) * (k / 128) * 4), d(rows * n * 2),
        mm(g * 4);
    random_fp8(a), random_scales(sa), random_fp8(b), random_scales(sb);
    fill_int32<<<1, 256>>>(mm.as<int32_t>(), g, int32_t(expected_m));
    const auto at = tensor(a.p, MEGAMOE_DTYPE_FP8_E4M3, {g, max_m, k});
    const auto sat = tensor(sa.p, MEGAMOE_DTYPE_FP32, {g, max_m, k / 128});
    const auto bt = tensor(b.p, MEGAMOE_DTYPE_FP8_E4M3, {g, n, k});
    const auto sbt = tensor(sb.p, MEGAMOE_DTYPE_FP32, {g, n / 128, k / 128});
    const auto mt = tensor(mm.p, MEGAMOE_DTYPE_INT32, {g});
    const auto dt = tensor(d.p, MEGAMOE_DTYPE_BF16, {g, max_m, n});
    const auto run = [&] { MM_OK(megamoe_gemm_grouped_masked(ctx, &at, &sat, &bt, &sbt, &mt, expected_m, &dt, nullptr)); };
    const double us = timer.median_us(run);
    const int64_t m = g * expected_m;
    // Effective bytes: weights + valid activations read once, valid outputs written once.
    gemm_result(name, 2.0 * m * n * k, double(g * n * k + m * k + m * n * 2), m, n, k, us);
    sweep_tiles(name, 2.0 * m * n * k, run);
  }

  double copy_gbps(size_t bytes) {
    DevMem src(bytes), dst(bytes);
    const double us = timer.median_us([&] { CUDA_OK(cudaMemcpyAsync(dst.p, src.p, bytes, cudaMemcpyDeviceToDevice)); });
    return 2.0 * bytes / us * 1e-3;
  }

  void memory_result(const std::string& name, double bytes, double us, double copy) {
    Result r;
    r.name = name;
    r.median_us = us;
    r.gbps = bytes / us * 1e-3;
    r.baseline_gbps = copy;
    print_result(r);
    results.push_back(r);
  }

  void quant_activations(int64_t m, int64_t k, megamoe_dtype_t dtype) {
    const bool bf16 = dtype == MEGAMOE_DTYPE_BF16;
    const std::string name = std::string("quant/act_") + (bf16 ? "bf16" : "fp32") + "_m" + std::to_string(m) + "_k" +
                             std::to_string(k);
    if (!wanted(name)) return;
    const int64_t es = bf16 ? 2 : 4;
    DevMem x(m * k * es), q(m * k), s(m * ((k + 127) / 128) * 4);
    if (bf16) fill_bf16<<<1024, 256>>>(x.as<uint16_t>(), m * k, g_seed++);
    else fill_float<<<1024, 256>>>(x.as<float>(), m * k, g_seed++, -3.0f, 3.0f);
    const auto xt = tensor(x.p, dtype, {m, k}), qt = tensor(q.p, MEGAMOE_DTYPE_FP8_E4M3, {m, k});
    const auto st = tensor(s.p, MEGAMOE_DTYPE_FP32, {m, (k + 127) / 128});
    const double us = timer.median_us([&] { MM_OK(megamoe_quantize_activations(ctx, &xt, &qt, &st, 0, nullptr)); });
    const double bytes = double(m * k * es + m * k + s.bytes);
    memory_result(name, bytes, us, copy_gbps(size_t(bytes / 2)));
    // Dequantize back to the same dtype.
    const std::string dname = std::string("quant/dequant_act_") + (bf16 ? "bf16" : "fp32") + "_m" + std::to_string(m) +
                              "_k" + std::to_string(k);
    const double dus = timer.median_us([&] { MM_OK(megamoe_dequantize_activations(ctx, &qt, &st, &xt, nullptr)); });
    memory_result(dname, bytes, dus, copy_gbps(size_t(bytes / 2)));
  }

  void quant_weights(int64_t e, int64_t n, int64_t k) {
    const std::string name =
        "quant/weights_bf16_e" + std::to_string(e) + "_n" + std::to_string(n) + "_k" + std::to_string(k);
    if (!wanted(name)) return;
    DevMem w(e * n * k * 2), q(e * n * k), s(e * (n / 128) * (k / 128) * 4);
    fill_bf16<<<1024, 256>>>(w.as<uint16_t>(), e * n * k, g_seed++);
    const auto wt = tensor(w.p, MEGAMOE_DTYPE_BF16, {e, n, k}), qt = tensor(q.p, MEGAMOE_DTYPE_FP8_E4M3, {e, n, k});
    const auto st = tensor(s.p, MEGAMOE_DTYPE_FP32, {e, n / 128, k / 128});
    const double us = timer.median_us([&] { MM_OK(megamoe_quantize_weights(ctx, &wt, &qt, &st, 0, nullptr)); });
    const double bytes = double(e * n * k * 3 + s.bytes);
    memory_result(name, bytes, us, copy_gbps(size_t(bytes / 2)));
    const std::string iname = "transform/interleave_fp8_e" + std::to_string(e) + "_n" + std::to_string(n) + "_k" +
                              std::to_string(k);
    DevMem out(e * n * k);
    const auto ot = tensor(out.p, MEGAMOE_DTYPE_FP8_E4M3, {e, n, k});
    const double ius = timer.median_us([&] { MM_OK(megamoe_interleave_gate_up(ctx, &qt, &ot, 0, nullptr)); });
    memory_result(iname, double(2 * e * n * k), ius, copy_gbps(size_t(e * n * k)));
  }
};

}  // namespace

#include "routed_moe_cases.cuh"
#include "ep_cases.cuh"

namespace {

std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) out += c;
    else if (c >= 'A' && c <= 'Z') out += static_cast<char>(c - 'A' + 'a');
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_dir = "bench/results", filter, commit;
  int reps = 20;
  bool sweep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--out" && i + 1 < argc) out_dir = argv[++i];
    else if (arg == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (arg == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (arg == "--commit" && i + 1 < argc) commit = argv[++i];
    else if (arg == "--sweep") sweep = true;
    else {
      std::fprintf(stderr, "usage: %s [--out DIR] [--filter SUBSTRING] [--reps N] [--commit SHA] [--sweep]\n", argv[0]);
      return 1;
    }
  }
  if (commit.empty()) commit = std::getenv("MEGAMOE_COMMIT") ? std::getenv("MEGAMOE_COMMIT") : "uncommitted";
  if (megamoe_backend_available(MEGAMOE_BACKEND_CUDA, 0) != MEGAMOE_SUCCESS) {
    std::fprintf(stderr, "CUDA backend unavailable: %s\n", megamoe_last_error_message());
    return 5;
  }
  Bench bench;
  bench.filter = filter;
  bench.timer.reps = reps;
  bench.sweep = sweep;
  MM_OK(megamoe_context_create(MEGAMOE_BACKEND_CUDA, 0, &bench.ctx));
  megamoe_device_info_t info;
  std::memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  MM_OK(megamoe_context_get_device_info(bench.ctx, &info));
  std::printf("device %s, %d SMs, driver %d, runtime %d\n", info.name, info.multiprocessor_count, info.driver_version,
              info.runtime_version);

  for (auto [n, k] : {std::pair<int64_t, int64_t>{4096, 7168}, {7168, 2048}, {7168, 16384}}) {
    for (int64_t m : {128, 4096}) bench.dense(m, n, k);
  }
  bench.dense(64, 2048, 7168);
  bench.dense(2048, 2816, 2048);
  bench.dense(8192, 4096, 4096);
  bench.eager_dense(128, 4096, 7168);
  for (auto [n, k] : {std::pair<int64_t, int64_t>{4096, 7168}, {7168, 2048}}) {
    bench.contiguous(4, 8192, n, k);
    bench.contiguous(8, 4096, n, k);
    bench.contiguous(32, 256, n, k);
  }
  for (auto [n, k] : {std::pair<int64_t, int64_t>{4096, 7168}, {7168, 2048}}) {
    bench.masked(32, 192, n, k);
    bench.masked(32, 20, n, k);
    bench.masked(6, 1024, n, k);
    bench.masked(8, 1024, n, k);
  }
  bench.quant_activations(16384, 7168, MEGAMOE_DTYPE_BF16);
  bench.quant_activations(16384, 7168, MEGAMOE_DTYPE_FP32);
  bench.quant_weights(8, 4096, 7168);
  for (auto [n, k] : {std::pair<int64_t, int64_t>{4096, 7168}, {7168, 2048}}) {
    for (int64_t t : {128, 512, 4096}) routed_cases::routed_vs_contiguous(bench, t, n, k);
    routed_cases::es_vs_fixed(bench, 4096, n, k);
    routed_cases::es_decode(bench, n, k);
  }
  for (int64_t t : {1, 16, 128, 512, 4096, 16384}) routed_cases::moe_layer(bench, t, 32);
  routed_cases::moe_layer(bench, 1, 256);
  constexpr uint32_t kEsUp = MEGAMOE_MOE_EXPERT_SPECIALIZATION_UP;
  constexpr uint32_t kEsBoth = kEsUp | MEGAMOE_MOE_EXPERT_SPECIALIZATION_DOWN;
  for (uint32_t flags : {kEsUp, kEsBoth}) {
    for (int64_t t : {1, 16, 128}) routed_cases::moe_layer(bench, t, 32, flags);
    routed_cases::moe_layer(bench, 1, 256, flags);
  }
  for (int32_t w : {1, 2, 4, 8}) ep_cases::ep_layer(bench, w, 128);
  MM_OK(megamoe_context_destroy(bench.ctx));

  // JSON
  char date[16];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  const std::string card = slug(info.name);
  mkdir(out_dir.c_str(), 0755);
  const std::string path = out_dir + "/" + date + "-" + card + ".json";
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return 6;
  }
  std::fprintf(f, "{\n  \"commit\": \"%s\",\n  \"card\": \"%s\",\n  \"cuda\": \"%d.%d\",\n  \"date\": \"%s\",\n",
               commit.c_str(), info.name, info.runtime_version / 1000, (info.runtime_version % 1000) / 10, date);
  std::fprintf(f, "  \"protocol\": \"median of %d runs after 3 warm-ups, L2 flushed (256 MiB memset) before each, CUDA events; "
                  "baseline: cuBLASLt FP8 E4M3 per-tensor-scale GEMM, BF16 out, same FLOPs, same run\",\n",
               reps);
  std::fprintf(f, "  \"results\": [\n");
  for (size_t i = 0; i < bench.results.size(); ++i) {
    const Result& r = bench.results[i];
    std::fprintf(f, "    {\"name\": \"%s\", \"median_us\": %.2f, \"tflops\": %.1f, \"gbps\": %.1f, \"baseline_tflops\": ",
                 r.name.c_str(), r.median_us, r.tflops, r.gbps);
    if (r.baseline_tflops > 0) std::fprintf(f, "%.1f", r.baseline_tflops);
    else std::fprintf(f, "null");
    if (r.baseline_gbps > 0) std::fprintf(f, ", \"copy_gbps\": %.1f", r.baseline_gbps);
    if (r.ref_value > 0) {
      std::fprintf(f, ", \"reference\": {\"name\": \"%s\", \"value\": %.2f, \"unit\": \"%s\"}", r.ref_name.c_str(),
                   r.ref_value, r.ref_unit.c_str());
    }
    for (const auto& [key, value] : r.extra) std::fprintf(f, ", \"%s\": %.3f", key.c_str(), value);
    std::fprintf(f, "}%s\n", i + 1 < bench.results.size() ? "," : "");
  }
  std::fprintf(f, "  ],\n  \"geomean_vs_cublaslt\": %.4f\n}\n", bench.geomean_vs_cublaslt());
  std::fclose(f);
  std::printf("dense + contiguous vs cuBLASLt, geometric mean: x%.3f\n", bench.geomean_vs_cublaslt());
  std::printf("wrote %s\n", path.c_str());
  return 0;
}
