// Helpers of the GPU parity tests: CUDA and CPU contexts, device buffers through the public API,
// the BF16 ulp bound of docs/NUMERICS.md section 3, and the tile override that reaches every GEMM
// instantiation (MEGAMOE_CUDA_GEMM_TILE).
#pragma once

#include <gtest/gtest.h>

#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cuda/sm90/gemm/variants.h"
#include "megamoe/megamoe.h"
#include "support/test_support.h"

namespace mmt_gpu {

// Every test starts with this: skipped, with the reason, where the CUDA backend is unavailable.
#define MMT_REQUIRE_CUDA()                                                                              \
  do {                                                                                                  \
    if (megamoe_backend_available(MEGAMOE_BACKEND_CUDA, 0) != MEGAMOE_SUCCESS) {                        \
      GTEST_SKIP() << "CUDA backend unavailable: " << megamoe_last_error_message();                    \
    }                                                                                                   \
  } while (0)

#define MMT_OK(call) ASSERT_EQ((call), MEGAMOE_SUCCESS) << #call << ": " << megamoe_last_error_message()

class Contexts {
 public:
  Contexts() {
    if (megamoe_context_create(MEGAMOE_BACKEND_CUDA, 0, &gpu) != MEGAMOE_SUCCESS) gpu = nullptr;
    if (megamoe_context_create(MEGAMOE_BACKEND_CPU, 0, &cpu) != MEGAMOE_SUCCESS) cpu = nullptr;
  }
  ~Contexts() {
    megamoe_context_destroy(gpu);
    megamoe_context_destroy(cpu);
  }
  Contexts(const Contexts&) = delete;
  Contexts& operator=(const Contexts&) = delete;
  megamoe_context_t gpu = nullptr;
  megamoe_context_t cpu = nullptr;
};

// Device memory of the CUDA context, moved through megamoe_buffer_* only.
class DeviceBuffer {
 public:
  DeviceBuffer(megamoe_context_t ctx, int64_t bytes) : bytes_(bytes) {
    if (megamoe_buffer_create(ctx, bytes > 0 ? bytes : 16, &buf_) != MEGAMOE_SUCCESS) {
      ADD_FAILURE() << "megamoe_buffer_create(" << bytes << "): " << megamoe_last_error_message();
      buf_ = nullptr;
      return;
    }
    int32_t type = 0, id = 0;
    if (megamoe_buffer_get_data(buf_, &data_, &type, &id) != MEGAMOE_SUCCESS) ADD_FAILURE() << megamoe_last_error_message();
  }
  ~DeviceBuffer() { megamoe_buffer_destroy(buf_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  int64_t bytes() const { return bytes_; }
  void upload(const void* host, int64_t bytes) {
    if (bytes > 0) {
      EXPECT_EQ(megamoe_buffer_write(buf_, 0, host, bytes, nullptr), MEGAMOE_SUCCESS) << megamoe_last_error_message();
    }
  }
  template <typename T>
  void upload(const mmt::HostVec<T>& v) {
    upload(v.data(), static_cast<int64_t>(v.size() * sizeof(T)));
  }
  template <typename T>
  mmt::HostVec<T> download(int64_t count) const {
    mmt::HostVec<T> out(static_cast<std::size_t>(count));
    if (count > 0) {
      EXPECT_EQ(megamoe_buffer_read(buf_, 0, out.data(), count * static_cast<int64_t>(sizeof(T)), nullptr), MEGAMOE_SUCCESS)
          << megamoe_last_error_message();
    }
    return out;
  }
  void poison(uint8_t byte = mmt::kPoison) {
    EXPECT_EQ(megamoe_buffer_fill(buf_, 0, bytes_ > 0 ? bytes_ : 16, byte, nullptr), MEGAMOE_SUCCESS)
        << megamoe_last_error_message();
  }
  // A dense row-major descriptor of this buffer on CUDA device 0.
  megamoe_tensor_t tensor(megamoe_dtype_t dtype, const std::vector<int64_t>& shape) const {
    megamoe_tensor_t t = mmt::make_tensor(data_, dtype, shape);
    t.device_type = MEGAMOE_DEVICE_CUDA;
    t.device_id = 0;
    return t;
  }

 private:
  megamoe_buffer_t buf_ = nullptr;
  void* data_ = nullptr;
  int64_t bytes_ = 0;
};

template <typename T>
std::unique_ptr<DeviceBuffer> to_device(megamoe_context_t ctx, const mmt::HostVec<T>& v) {
  auto buf = std::make_unique<DeviceBuffer>(ctx, static_cast<int64_t>(v.size() * sizeof(T)));
  buf->upload(v);
  return buf;
}

// Forces one GEMM tile configuration for the scope ("" = the heuristic's choice).
class TileOverride {
 public:
  explicit TileOverride(const std::string& tile) {
    if (tile.empty()) {
      unsetenv("MEGAMOE_CUDA_GEMM_TILE");
    } else {
      setenv("MEGAMOE_CUDA_GEMM_TILE", tile.c_str(), 1);
    }
  }
  ~TileOverride() { unsetenv("MEGAMOE_CUDA_GEMM_TILE"); }
};

// "" (heuristic) and every instantiated plain-layout variant (cuda/sm90/gemm/variants.h), as
// "BMxBNxC": C = 1 without and C = 2 with a 2-CTA cluster sharing A by TMA multicast (where N allows).
// MEGAMOE_TEST_TILES="128x256x1,64x128x2" narrows the list (e.g. for compute-sanitizer runs).
inline std::vector<std::string> all_tiles() {
  std::vector<std::string> tiles = {""};
  if (const char* env = std::getenv("MEGAMOE_TEST_TILES"); env != nullptr && *env != '\0') {
    std::string list = env;
    for (std::size_t start = 0; start <= list.size();) {
      const std::size_t comma = list.find(',', start);
      const std::size_t end = comma == std::string::npos ? list.size() : comma;
      if (end > start) tiles.push_back(list.substr(start, end - start));
      start = end + 1;
    }
    return tiles;
  }
  for (const auto& v : megamoe::cuda::sm90::kGemmVariants) {
    // The dense tiles; a layout without one of them (192 rows for contiguous) runs the model's choice.
    if (v.kind != megamoe::cuda::sm90::GemmKind::Dense) continue;
    tiles.push_back(std::to_string(v.block_m) + "x" + std::to_string(v.block_n) + "x" + std::to_string(v.multicast));
  }
  return tiles;
}

// GPU bound of a GEMM output. docs/NUMERICS.md section 3 asks for 1 BF16 ulp; Hopper's FP8 tensor
// cores sum each 128-K block with a truncated (about 13-14 bit) accumulator, so where a block's
// products cancel, `partial` can be off by far more than 1 ulp of the (small) result. The test
// therefore accepts an output that is within 1 BF16 ulp of the reference OR within
// kTensorCoreTolerance * magnitude, magnitude = sum_b |sa*sb| * sum_{k in b} |a_k * b_k| (the scale
// of the numbers the tensor core added), and reports both counts and the worst ratio seen.
constexpr double kTensorCoreTolerance = 1.0 / 512.0;  // 2^-9

struct UlpReport {
  int64_t count = 0;
  int64_t exact = 0;
  int64_t beyond_ulp = 0;   // more than 1 ulp away (allowed when within the tensor-core bound)
  int64_t violations = 0;   // beyond both bounds
  int64_t max_ulp = 0;
  double max_ratio = 0.0;   // max |gpu - ref| / magnitude over outputs beyond 1 ulp
  std::string first;
};

inline bool near_zero(uint16_t b) { return (b & 0x7FFFu) <= 1u; }

// magnitude: one value per output (nullptr: the 1-ulp rule alone).
inline UlpReport compare_bf16(const uint16_t* gpu, const uint16_t* ref, const double* magnitude, int64_t n,
                              int64_t row_len = 0) {
  UlpReport r;
  r.count = n;
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t g = gpu[i], w = ref[i];
    if (g == w) {
      ++r.exact;
      continue;
    }
    int64_t ulp;
    bool ok;
    if ((g & 0x8000u) == (w & 0x8000u)) {
      ulp = std::llabs(static_cast<int64_t>(g & 0x7FFFu) - static_cast<int64_t>(w & 0x7FFFu));
      ok = ulp <= 1;
    } else {
      ulp = static_cast<int64_t>(g & 0x7FFFu) + static_cast<int64_t>(w & 0x7FFFu);
      ok = near_zero(g) && near_zero(w);
    }
    if (ulp > r.max_ulp) r.max_ulp = ulp;
    if (ok) continue;
    ++r.beyond_ulp;
    const double gf = mmt::bf16_decode(g), wf = mmt::bf16_decode(w);
    const double err = std::fabs(gf - wf);
    const double mag = magnitude != nullptr ? magnitude[i] : 0.0;
    const double ratio = mag > 0.0 ? err / mag : (err > 0.0 ? 1e30 : 0.0);
    if (ratio > r.max_ratio) r.max_ratio = ratio;
    if (magnitude != nullptr && err <= kTensorCoreTolerance * mag) continue;
    if (r.violations < 8) {
      char line[200];
      if (row_len > 0) {
        std::snprintf(line, sizeof line, "  [row %" PRId64 ", col %" PRId64 "] gpu 0x%04x (%g) ref 0x%04x (%g) magnitude %g\n",
                      i / row_len, i % row_len, g, gf, w, wf, mag);
      } else {
        std::snprintf(line, sizeof line, "  [%" PRId64 "] gpu 0x%04x (%g) ref 0x%04x (%g) magnitude %g\n", i, g, gf, w,
                      wf, mag);
      }
      r.first += line;
    }
    ++r.violations;
  }
  return r;
}

// Fixture of the parity tests: skipped with the reason where CUDA is unavailable, both contexts,
// and a fresh seed per test (MMT_SEED_TRACE it).
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MMT_REQUIRE_CUDA();
    ctx_ = std::make_unique<Contexts>();
    ASSERT_NE(ctx_->gpu, nullptr) << megamoe_last_error_message();
    ASSERT_NE(ctx_->cpu, nullptr) << megamoe_last_error_message();
    seed_ = mmt::fresh_seed();
  }
  Contexts& c() { return *ctx_; }
  std::unique_ptr<Contexts> ctx_;
  uint64_t seed_ = 0;
};

}  // namespace mmt_gpu
