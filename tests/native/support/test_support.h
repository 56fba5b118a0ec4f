// Shared helpers for the MegaMoe native tests: aligned host storage, tensor descriptors, random
// inputs with a printed seed, poisoning, independent FP8/BF16 conversions and the float32/float64
// references of docs/NUMERICS.md. Nothing here includes library internals: the references are a
// second, independent implementation of the contract.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "megamoe/megamoe.h"

namespace mmt {

// ------------------------------------------------------------------------------------------------
// Aligned host storage. Every allocation is 64-byte aligned and carries 64 bytes of slack at the end,
// so that deliberately misaligned descriptors (data + 1/2/8) still point into owned memory.
// ------------------------------------------------------------------------------------------------
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() noexcept = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    const std::size_t bytes = ((n * sizeof(T) + 64 + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, bytes);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) noexcept { std::free(p); }
  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const noexcept {
    return true;
  }
  template <typename U>
  bool operator!=(const AlignedAllocator<U>&) const noexcept {
    return false;
  }
};

template <typename T>
using HostVec = std::vector<T, AlignedAllocator<T>>;

// ------------------------------------------------------------------------------------------------
// Tensor descriptors
// ------------------------------------------------------------------------------------------------
int64_t dtype_bytes(megamoe_dtype_t dtype);
int64_t numel(const std::vector<int64_t>& shape);
// A dense row-major CPU descriptor of `shape`.
megamoe_tensor_t make_tensor(const void* data, megamoe_dtype_t dtype, const std::vector<int64_t>& shape);
inline megamoe_tensor_t make_tensor(const void* data, megamoe_dtype_t dtype, std::initializer_list<int64_t> shape) {
  return make_tensor(data, dtype, std::vector<int64_t>(shape));
}

// A MoE layer configuration of these sizes with the plain SwiGLU defaults: alpha 1, beta 0, no clamp,
// routed scaling factor 1, no flags, no progress callback.
megamoe_moe_config_t moe_config(int32_t experts, int32_t top_k, int64_t hidden, int64_t intermediate,
                                int64_t max_tokens);

// ------------------------------------------------------------------------------------------------
// A CPU context for the duration of a test (ADD_FAILURE if it cannot be created).
// ------------------------------------------------------------------------------------------------
class ScopedContext {
 public:
  explicit ScopedContext(megamoe_backend_t backend = MEGAMOE_BACKEND_CPU);
  ~ScopedContext();
  ScopedContext(const ScopedContext&) = delete;
  ScopedContext& operator=(const ScopedContext&) = delete;
  megamoe_context_t get() const { return ctx_; }
  operator megamoe_context_t() const { return ctx_; }

 private:
  megamoe_context_t ctx_ = nullptr;
};

// Owns a MegaMoe handle for the duration of a test and destroys it at the end (NULL is fine).
template <typename Handle, megamoe_status_t (*Destroy)(Handle)>
class Owned {
 public:
  Owned() = default;
  ~Owned() { EXPECT_EQ(Destroy(h_), MEGAMOE_SUCCESS) << megamoe_last_error_message(); }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  Handle* out() { return &h_; }
  Handle get() const { return h_; }

 private:
  Handle h_ = nullptr;
};

// An enum value outside the declared enumerators (as a C caller could pass), without the undefined
// behaviour of static_cast-ing an out-of-range integer.
template <typename Enum>
Enum raw_enum(int32_t value) {
  static_assert(sizeof(Enum) == sizeof(int32_t), "C enums are int-sized here");
  Enum e;
  std::memcpy(&e, &value, sizeof e);
  return e;
}

// True when `message` contains `needle`.
inline bool contains(const std::string& message, const std::string& needle) {
  return message.find(needle) != std::string::npos;
}
inline std::string last_error() {
  const char* m = megamoe_last_error_message();
  return m ? std::string(m) : std::string("(null)");
}

// ------------------------------------------------------------------------------------------------
// Random inputs. The seed comes from std::random_device, or from MEGAMOE_TEST_SEED when set (to
// replay a failure); SEED_TRACE puts it into every failure message of the enclosing scope.
// ------------------------------------------------------------------------------------------------
uint64_t fresh_seed();
std::string seed_message(uint64_t seed);
#define MMT_SEED_TRACE(seed) SCOPED_TRACE(::mmt::seed_message(seed))

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(engine_); }
  double normal(double mean = 0.0, double stddev = 1.0) {
    return std::normal_distribution<double>(mean, stddev)(engine_);
  }
  // Uniform integer in [lo, hi].
  int64_t range(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(engine_); }
  bool chance(double p) { return uniform(0.0, 1.0) < p; }
  uint32_t bits32() { return static_cast<uint32_t>(engine_()); }
  std::mt19937_64& engine() { return engine_; }

 private:
  std::mt19937_64 engine_;
};

// Random finite FP8 codes (never a NaN code).
HostVec<uint8_t> random_fp8(Rng& rng, int64_t n);
// A positive scale 2^[lo_exp, hi_exp) * [1, 2), generally not a power of two.
float random_scale(Rng& rng, int lo_exp = -10, int hi_exp = -2);
HostVec<float> random_scales(Rng& rng, int64_t n, int lo_exp = -10, int hi_exp = -2);
HostVec<float> random_normal(Rng& rng, int64_t n, double stddev = 1.0);
// Values rounded to BF16 (bits, independent encoder) and back.
HostVec<uint16_t> to_bf16(const HostVec<float>& x);
HostVec<float> from_bf16(const HostVec<uint16_t>& x);

// ------------------------------------------------------------------------------------------------
// Independent FP8 E4M3FN / BF16 / UE8M0 helpers (not core/formats.h).
// ------------------------------------------------------------------------------------------------
// Decoded value of an FP8 code, from the definition (ldexp), NaN for S.1111.111.
float fp8_decode(uint8_t code);
// Nearest FP8 value, ties to the even code, |x| >= 448 (and +-inf) saturating, NaN -> 0x7F.
// Implemented by a search over the 127 finite magnitudes.
uint8_t fp8_encode(float x);
float bf16_decode(uint16_t bits);
// Nearest BF16 (ties to even, overflow to inf), NaN -> 0x7FFF; computed by comparing the two
// neighbouring BF16 values in double.
uint16_t bf16_encode(float x);
// 2^ceil(log2(x)) for positive normal x, through frexp.
float pow2_ceil(float x);
uint32_t float_to_bits(float x);
float bits_to_float(uint32_t u);
// FP8 value times 2^9 as an exact integer (every finite FP8 value is a multiple of 2^-9).
int32_t fp8_units(uint8_t code);

// ------------------------------------------------------------------------------------------------
// Concurrency: body(t) on `threads` threads started together; each thread's verdict ("" = fine).
// ------------------------------------------------------------------------------------------------
template <typename Body>
std::vector<std::string> on_threads(int threads, Body body) {
  std::vector<std::string> verdicts(static_cast<size_t>(threads));
  std::atomic<int> ready{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ++ready;
      while (ready.load() < threads) std::this_thread::yield();  // start together
      verdicts[static_cast<size_t>(t)] = body(t);
    });
  }
  for (auto& worker : workers) worker.join();
  return verdicts;
}

// ------------------------------------------------------------------------------------------------
// Poisoning: fill outputs with a recognizable pattern, check later that nothing was written.
// ------------------------------------------------------------------------------------------------
constexpr uint8_t kPoison = 0xA5;  // as BF16 0xA5A5 = -2.87e-16, as FP8 a finite negative value
template <typename T>
void poison(HostVec<T>& v, uint8_t byte = kPoison) {
  if (!v.empty()) std::memset(static_cast<void*>(v.data()), byte, v.size() * sizeof(T));
}
template <typename T>
bool all_bytes_are(const T* data, std::size_t count, uint8_t byte = kPoison) {
  const auto* p = reinterpret_cast<const uint8_t*>(data);
  for (std::size_t i = 0; i < count * sizeof(T); ++i)
    if (p[i] != byte) return false;
  return true;
}

// An output array of n elements followed by a poisoned guard zone; the whole allocation starts
// poisoned, so both "not written" and "written past the end" can be checked.
template <typename T>
class GuardedOut {
 public:
  static constexpr std::size_t kGuard = 256;
  explicit GuardedOut(int64_t n) : n_(n), v_(static_cast<std::size_t>(n) + kGuard) { poison(v_); }
  T* data() { return v_.data(); }
  const T* data() const { return v_.data(); }
  int64_t size() const { return n_; }
  T& operator[](int64_t i) { return v_[static_cast<std::size_t>(i)]; }
  const T& operator[](int64_t i) const { return v_[static_cast<std::size_t>(i)]; }
  bool guard_intact() const { return all_bytes_are(v_.data() + n_, kGuard); }
  bool untouched() const { return all_bytes_are(v_.data(), v_.size()); }

 private:
  int64_t n_;
  HostVec<T> v_;
};

// Bitwise comparison listing the first mismatches (index, got, want as hex and as value).
::testing::AssertionResult bf16_bits_equal(const uint16_t* got, const uint16_t* want, int64_t n);
::testing::AssertionResult bytes_equal(const void* got, const void* want, int64_t n);
::testing::AssertionResult float_bits_equal(const float* got, const float* want, int64_t n);

// ------------------------------------------------------------------------------------------------
// References (docs/NUMERICS.md), written from the contract text.
// ------------------------------------------------------------------------------------------------
// Section 2, activations: x [M, K] float32 -> q [M, K] codes, s [M, ceil(K/128)].
void ref_quantize_activations(const float* x, int64_t M, int64_t K, bool ue8m0, uint8_t* q, float* s);
// Section 2, weights: w [E, N, K] -> q, s [E, ceil(N/128), ceil(K/128)].
void ref_quantize_weights(const float* w, int64_t E, int64_t N, int64_t K, bool ue8m0, uint8_t* q, float* s);

// Section 3: the float32 accumulator of one output element. a_row [K] with sa_row [K/128];
// b_row [K] with sb_row [K/128] (the scales of the row's 128-row block). Partial sums are exact
// integer sums of FP8 units, rounded once to float32.
float ref_gemm_acc(const uint8_t* a_row, const float* sa_row, const uint8_t* b_row, const float* sb_row, int64_t K);
// The same in float64 without any intermediate rounding (sanity reference).
double ref_gemm_f64(const uint8_t* a_row, const float* sa_row, const uint8_t* b_row, const float* sb_row, int64_t K);

// Dense D [M, N] bf16 bits by section 3.
void ref_gemm_dense(const uint8_t* a, const float* sa, const uint8_t* b, const float* sb, int64_t M, int64_t N,
                    int64_t K, uint16_t* d);

// Relative Frobenius error ||got - want|| / ||want|| (want in float64).
double rel_error(const std::vector<double>& want, const std::vector<double>& got);
// 1 - 2<x,y> / (|x|^2 + |y|^2)
double cos_diff(const std::vector<double>& x, const std::vector<double>& y);

// Gate/up 8-row interleave (megamoe_interleave_gate_up) of w [E, 2I, H] with elements of
// elem_size bytes: out rows = gate 0-7, up 0-7, gate 8-15, up 8-15, ...; inverse undoes it.
void ref_interleave_gate_up(const void* in, void* out, int64_t E, int64_t I, int64_t H, int64_t elem_size, bool inverse);

// Section 4: MoE layer.
struct MoeRefConfig {
  int64_t E = 0, k = 0, H = 0, I = 0;
  float alpha = 1.0f, beta = 0.0f, clamp = 0.0f, rsf = 1.0f;
};
struct MoeRefWeights {
  // Canonical (non-interleaved) FP8 weights with their 128x128 block scales.
  HostVec<uint8_t> w13;  // [E, 2I, H]
  HostVec<float> s13;    // [E, 2I/128, H/128]
  HostVec<uint8_t> w2;   // [E, H, I]
  HostVec<float> s2;     // [E, H/128, I/128]
};
// Bitwise reference: x already quantized (qx [T, H], sx [T, H/128]); topk_idx as int64.
void ref_moe_forward(const MoeRefConfig& cfg, const MoeRefWeights& w, const uint8_t* qx, const float* sx,
                     const int64_t* topk_idx, const float* topk_weights, int64_t T, uint16_t* y);
// Float64 of the same math on dequantized weights, x unquantized (x [T, H] float values).
void ref_moe_forward_f64(const MoeRefConfig& cfg, const MoeRefWeights& w, const float* x, const int64_t* topk_idx,
                         const float* topk_weights, int64_t T, double* y);

}  // namespace mmt
