// Contexts, backends, device info, worker threads and buffers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.h"

namespace {

using mmt::contains;
using mmt::HostVec;
using mmt::last_error;
using mmt::make_tensor;

megamoe_context_t const kSentinelContext = reinterpret_cast<megamoe_context_t>(uintptr_t{0x5A5A5A50});
megamoe_buffer_t const kSentinelBuffer = reinterpret_cast<megamoe_buffer_t>(uintptr_t{0x5A5A5A60});

bool cuda_available() { return megamoe_backend_available(MEGAMOE_BACKEND_CUDA, 0) == MEGAMOE_SUCCESS; }

// ------------------------------------------------------------------------------------------------
// Contexts and backends
// ------------------------------------------------------------------------------------------------
TEST(Context, CpuCreateAndDestroy) {
  megamoe_context_t ctx = nullptr;
  ASSERT_EQ(megamoe_context_create(MEGAMOE_BACKEND_CPU, 0, &ctx), MEGAMOE_SUCCESS) << last_error();
  ASSERT_NE(ctx, nullptr);
  megamoe_backend_t backend = MEGAMOE_BACKEND_BEST;
  EXPECT_EQ(megamoe_context_get_backend(ctx, &backend), MEGAMOE_SUCCESS);
  EXPECT_EQ(backend, MEGAMOE_BACKEND_CPU);
  EXPECT_EQ(megamoe_context_synchronize(ctx, nullptr), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_context_destroy(ctx), MEGAMOE_SUCCESS);
}

TEST(Context, BestIsCudaWhenUsableElseCpu) {
  megamoe_context_t ctx = nullptr;
  ASSERT_EQ(megamoe_context_create(MEGAMOE_BACKEND_BEST, 0, &ctx), MEGAMOE_SUCCESS) << last_error();
  megamoe_backend_t backend = MEGAMOE_BACKEND_BEST;
  EXPECT_EQ(megamoe_context_get_backend(ctx, &backend), MEGAMOE_SUCCESS);
  EXPECT_EQ(backend, cuda_available() ? MEGAMOE_BACKEND_CUDA : MEGAMOE_BACKEND_CPU);
  EXPECT_NE(backend, MEGAMOE_BACKEND_BEST);
  EXPECT_EQ(megamoe_context_destroy(ctx), MEGAMOE_SUCCESS);
}

TEST(Context, CpuBackendIsAlwaysAvailable) {
  EXPECT_EQ(megamoe_backend_available(MEGAMOE_BACKEND_CPU, 0), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(megamoe_backend_available(MEGAMOE_BACKEND_BEST, 0), MEGAMOE_SUCCESS) << last_error();
}

TEST(Context, CudaUnavailableIsReportedWithReason) {
  const megamoe_status_t st = megamoe_backend_available(MEGAMOE_BACKEND_CUDA, 0);
  if (st == MEGAMOE_SUCCESS) {
    // Consistency: a usable CUDA backend must give a CUDA context.
    megamoe_context_t ctx = nullptr;
    ASSERT_EQ(megamoe_context_create(MEGAMOE_BACKEND_CUDA, 0, &ctx), MEGAMOE_SUCCESS) << last_error();
    megamoe_backend_t backend = MEGAMOE_BACKEND_BEST;
    EXPECT_EQ(megamoe_context_get_backend(ctx, &backend), MEGAMOE_SUCCESS);
    EXPECT_EQ(backend, MEGAMOE_BACKEND_CUDA);
    EXPECT_EQ(megamoe_context_destroy(ctx), MEGAMOE_SUCCESS);
    GTEST_SKIP() << "CUDA is usable on this machine";
  }
  EXPECT_EQ(st, MEGAMOE_ERROR_BACKEND_UNAVAILABLE);
  EXPECT_TRUE(contains(last_error(), "CUDA")) << last_error();

  const int64_t live = megamoe_live_object_count();
  megamoe_context_t ctx = kSentinelContext;
  EXPECT_EQ(megamoe_context_create(MEGAMOE_BACKEND_CUDA, 0, &ctx), MEGAMOE_ERROR_BACKEND_UNAVAILABLE);
  EXPECT_TRUE(contains(last_error(), "CUDA")) << last_error();
  EXPECT_EQ(ctx, kSentinelContext) << "a failed create must not write its output";
  EXPECT_EQ(megamoe_live_object_count(), live);
}

TEST(Context, InvalidArguments) {
  megamoe_context_t ctx = kSentinelContext;
  EXPECT_EQ(megamoe_context_create(MEGAMOE_BACKEND_CPU, 0, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'out_context'")) << last_error();
  EXPECT_EQ(megamoe_context_create(mmt::raw_enum<megamoe_backend_t>(7), 0, &ctx), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'backend'")) << last_error();
  EXPECT_EQ(megamoe_context_create(mmt::raw_enum<megamoe_backend_t>(-1), 0, &ctx), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(ctx, kSentinelContext);
  EXPECT_EQ(megamoe_backend_available(mmt::raw_enum<megamoe_backend_t>(7), 0), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'backend'")) << last_error();

  megamoe_backend_t backend = MEGAMOE_BACKEND_BEST;
  EXPECT_EQ(megamoe_context_get_backend(nullptr, &backend), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'context'")) << last_error();
  EXPECT_EQ(backend, MEGAMOE_BACKEND_BEST);
  mmt::ScopedContext sc;
  EXPECT_EQ(megamoe_context_get_backend(sc, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'out_backend'")) << last_error();
  EXPECT_EQ(megamoe_context_synchronize(nullptr, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'context'")) << last_error();
  EXPECT_EQ(megamoe_context_set_num_threads(nullptr, 1), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'context'")) << last_error();
  megamoe_device_info_t info{};
  info.struct_size = sizeof info;
  EXPECT_EQ(megamoe_context_get_device_info(nullptr, &info), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'context'")) << last_error();
  EXPECT_EQ(megamoe_context_get_device_info(sc, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'out_info'")) << last_error();
}

TEST(Context, DestroyNullIsOk) {
  EXPECT_EQ(megamoe_context_destroy(nullptr), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_buffer_destroy(nullptr), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_routed_plan_destroy(nullptr), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_moe_layer_destroy(nullptr), MEGAMOE_SUCCESS);
}

TEST(Context, DeviceInfoOnCpu) {
  mmt::ScopedContext ctx;
  megamoe_device_info_t info;
  std::memset(&info, 0x5A, sizeof info);
  info.struct_size = sizeof info;
  ASSERT_EQ(megamoe_context_get_device_info(ctx, &info), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(info.backend, MEGAMOE_BACKEND_CPU);
  EXPECT_EQ(info.device_id, 0);
  EXPECT_EQ(info.compute_capability_major, 0);
  EXPECT_EQ(info.compute_capability_minor, 0);
  EXPECT_GE(info.multiprocessor_count, 1);
  EXPECT_EQ(info.driver_version, 0);
  EXPECT_EQ(info.runtime_version, 0);
  EXPECT_GE(info.total_memory_bytes, 0);
  EXPECT_GE(info.l2_cache_bytes, 0);
  const void* nul = std::memchr(info.name, '\0', sizeof info.name);
  ASSERT_NE(nul, nullptr) << "name is not NUL-terminated";
  EXPECT_GT(std::strlen(info.name), 0u);
}

TEST(Context, DeviceInfoRejectsWrongStructSize) {
  mmt::ScopedContext ctx;
  for (uint32_t size : {0u, 4u}) {
    megamoe_device_info_t info;
    std::memset(&info, 0x5A, sizeof info);
    info.struct_size = size;
    megamoe_device_info_t before = info;
    EXPECT_EQ(megamoe_context_get_device_info(ctx, &info), MEGAMOE_ERROR_INVALID_ARGUMENT) << "struct_size " << size;
    EXPECT_TRUE(contains(last_error(), "struct_size")) << last_error();
    EXPECT_EQ(std::memcmp(&info, &before, sizeof info), 0) << "failed call wrote into out_info";
  }
}

TEST(Context, NumThreads) {
  mmt::ScopedContext ctx;
  auto workers = [&] {
    megamoe_device_info_t info{};
    info.struct_size = sizeof info;
    EXPECT_EQ(megamoe_context_get_device_info(ctx, &info), MEGAMOE_SUCCESS);
    return info.multiprocessor_count;
  };
  ASSERT_EQ(megamoe_context_set_num_threads(ctx, 1), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(workers(), 1);
  ASSERT_EQ(megamoe_context_set_num_threads(ctx, 3), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(workers(), 3);
  ASSERT_EQ(megamoe_context_set_num_threads(ctx, 0), MEGAMOE_SUCCESS) << last_error();
  const unsigned hw = std::thread::hardware_concurrency();
  if (hw > 0) {
    EXPECT_EQ(workers(), static_cast<int32_t>(hw));
  }
  EXPECT_EQ(megamoe_context_set_num_threads(ctx, -1), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'num_threads'")) << last_error();
}

// The result of a GEMM does not depend on the number of worker threads.
TEST(Context, ResultsDoNotDependOnThreadCount) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const int64_t M = 129, N = 256, K = 256;
  auto a = mmt::random_fp8(rng, M * K);
  auto sa = mmt::random_scales(rng, M * K / 128);
  auto b = mmt::random_fp8(rng, N * K);
  auto sb = mmt::random_scales(rng, (N / 128) * (K / 128));
  const auto at = make_tensor(a.data(), MEGAMOE_DTYPE_FP8_E4M3, {M, K});
  const auto sat = make_tensor(sa.data(), MEGAMOE_DTYPE_FP32, {M, K / 128});
  const auto bt = make_tensor(b.data(), MEGAMOE_DTYPE_FP8_E4M3, {N, K});
  const auto sbt = make_tensor(sb.data(), MEGAMOE_DTYPE_FP32, {N / 128, K / 128});
  mmt::ScopedContext ctx;
  std::vector<HostVec<uint16_t>> outs;
  for (int threads : {1, 2, 5, 0}) {
    ASSERT_EQ(megamoe_context_set_num_threads(ctx, threads), MEGAMOE_SUCCESS);
    HostVec<uint16_t> d(static_cast<std::size_t>(M * N));
    const auto dt = make_tensor(d.data(), MEGAMOE_DTYPE_BF16, {M, N});
    ASSERT_EQ(megamoe_gemm_dense(ctx, &at, &sat, &bt, &sbt, &dt, nullptr), MEGAMOE_SUCCESS) << last_error();
    outs.push_back(d);
  }
  HostVec<uint16_t> want(static_cast<std::size_t>(M * N));
  mmt::ref_gemm_dense(a.data(), sa.data(), b.data(), sb.data(), M, N, K, want.data());
  for (const auto& d : outs) EXPECT_TRUE(mmt::bf16_bits_equal(d.data(), want.data(), M * N));
}

// A context may be used from several threads at once.
TEST(Context, ConcurrentCallsOnOneContext) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  const int64_t M = 64, N = 128, K = 256;
  mmt::ScopedContext ctx;
  constexpr int kThreads = 4;
  std::vector<HostVec<uint8_t>> a, b;
  std::vector<HostVec<float>> sa, sb;
  std::vector<HostVec<uint16_t>> d(kThreads), want(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    a.push_back(mmt::random_fp8(rng, M * K));
    b.push_back(mmt::random_fp8(rng, N * K));
    sa.push_back(mmt::random_scales(rng, M * K / 128));
    sb.push_back(mmt::random_scales(rng, N / 128 * K / 128));
    d[static_cast<std::size_t>(i)].resize(static_cast<std::size_t>(M * N));
    want[static_cast<std::size_t>(i)].resize(static_cast<std::size_t>(M * N));
    mmt::ref_gemm_dense(a.back().data(), sa.back().data(), b.back().data(), sb.back().data(), M, N, K,
                        want[static_cast<std::size_t>(i)].data());
  }
  std::vector<megamoe_status_t> status(kThreads, MEGAMOE_ERROR_INTERNAL);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const auto u = static_cast<std::size_t>(i);
      const auto at = make_tensor(a[u].data(), MEGAMOE_DTYPE_FP8_E4M3, {M, K});
      const auto sat = make_tensor(sa[u].data(), MEGAMOE_DTYPE_FP32, {M, K / 128});
      const auto bt = make_tensor(b[u].data(), MEGAMOE_DTYPE_FP8_E4M3, {N, K});
      const auto sbt = make_tensor(sb[u].data(), MEGAMOE_DTYPE_FP32, {N / 128, K / 128});
      const auto dt = make_tensor(d[u].data(), MEGAMOE_DTYPE_BF16, {M, N});
      for (int rep = 0; rep < 3; ++rep) status[u] = megamoe_gemm_dense(ctx, &at, &sat, &bt, &sbt, &dt, nullptr);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    const auto u = static_cast<std::size_t>(i);
    EXPECT_EQ(status[u], MEGAMOE_SUCCESS);
    EXPECT_TRUE(mmt::bf16_bits_equal(d[u].data(), want[u].data(), M * N)) << "thread " << i;
  }
}

// ------------------------------------------------------------------------------------------------
// Buffers
// ------------------------------------------------------------------------------------------------
TEST(Buffer, CreateQuerySizeAndData) {
  mmt::ScopedContext ctx;
  for (int64_t size : {1, 7, 64, 1000, 1 << 20}) {
    megamoe_buffer_t buf = nullptr;
    ASSERT_EQ(megamoe_buffer_create(ctx, size, &buf), MEGAMOE_SUCCESS) << last_error();
    int64_t got_size = -1;
    EXPECT_EQ(megamoe_buffer_get_size(buf, &got_size), MEGAMOE_SUCCESS);
    EXPECT_EQ(got_size, size);
    void* data = nullptr;
    int32_t type = -1, id = -1;
    EXPECT_EQ(megamoe_buffer_get_data(buf, &data, &type, &id), MEGAMOE_SUCCESS);
    EXPECT_NE(data, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % 64, 0u) << "CPU buffers are 64-byte aligned";
    EXPECT_EQ(type, MEGAMOE_DEVICE_CPU);
    EXPECT_EQ(id, 0);
    EXPECT_EQ(megamoe_buffer_destroy(buf), MEGAMOE_SUCCESS);
  }
}

TEST(Buffer, WriteReadFillRoundTrip) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const int64_t size = 4099;
  megamoe_buffer_t buf = nullptr;
  ASSERT_EQ(megamoe_buffer_create(ctx, size, &buf), MEGAMOE_SUCCESS) << last_error();
  std::vector<uint8_t> model(static_cast<std::size_t>(size));
  std::vector<uint8_t> src(static_cast<std::size_t>(size));
  for (auto& v : src) v = static_cast<uint8_t>(rng.bits32());
  ASSERT_EQ(megamoe_buffer_write(buf, 0, src.data(), size, nullptr), MEGAMOE_SUCCESS) << last_error();
  model = src;
  for (int i = 0; i < 50; ++i) {
    const int64_t off = rng.range(0, size);
    const int64_t len = rng.range(0, size - off);
    const int op = static_cast<int>(rng.range(0, 1));
    if (op == 0) {
      std::vector<uint8_t> chunk(static_cast<std::size_t>(len));
      for (auto& v : chunk) v = static_cast<uint8_t>(rng.bits32());
      ASSERT_EQ(megamoe_buffer_write(buf, off, chunk.data(), len, nullptr), MEGAMOE_SUCCESS) << last_error();
      std::copy(chunk.begin(), chunk.end(), model.begin() + off);
    } else {
      const auto value = static_cast<uint8_t>(rng.bits32());
      ASSERT_EQ(megamoe_buffer_fill(buf, off, len, value, nullptr), MEGAMOE_SUCCESS) << last_error();
      std::fill(model.begin() + off, model.begin() + off + len, value);
    }
    // Read a random window and the whole buffer.
    const int64_t roff = rng.range(0, size);
    const int64_t rlen = rng.range(0, size - roff);
    std::vector<uint8_t> window(static_cast<std::size_t>(rlen) + 8, 0xEE);
    ASSERT_EQ(megamoe_buffer_read(buf, roff, window.data(), rlen, nullptr), MEGAMOE_SUCCESS) << last_error();
    ASSERT_TRUE(mmt::bytes_equal(window.data(), model.data() + roff, rlen));
    for (std::size_t j = static_cast<std::size_t>(rlen); j < window.size(); ++j) ASSERT_EQ(window[j], 0xEE) << "read past size";
  }
  std::vector<uint8_t> all(static_cast<std::size_t>(size));
  ASSERT_EQ(megamoe_buffer_read(buf, 0, all.data(), size, nullptr), MEGAMOE_SUCCESS);
  EXPECT_TRUE(mmt::bytes_equal(all.data(), model.data(), size));
  // The CPU data pointer sees the same bytes.
  void* data = nullptr;
  int32_t type = -1, id = -1;
  ASSERT_EQ(megamoe_buffer_get_data(buf, &data, &type, &id), MEGAMOE_SUCCESS) << last_error();
  EXPECT_TRUE(mmt::bytes_equal(data, model.data(), size));
  EXPECT_EQ(megamoe_buffer_destroy(buf), MEGAMOE_SUCCESS);
}

TEST(Buffer, OutOfRangeAccessIsRejectedAndWritesNothing) {
  mmt::ScopedContext ctx;
  const int64_t size = 256;
  megamoe_buffer_t buf = nullptr;
  ASSERT_EQ(megamoe_buffer_create(ctx, size, &buf), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_buffer_fill(buf, 0, size, 0x11, nullptr), MEGAMOE_SUCCESS);
  const int64_t big = std::numeric_limits<int64_t>::max();
  struct Range {
    int64_t offset, bytes;
    const char* argument;  // the argument the message must name (either one of the pair is fine)
  };
  const std::vector<Range> bad = {
      {-1, 1, "offset_bytes"},  {0, -1, "size_bytes"},   {0, size + 1, "size_bytes"}, {1, size, "size_bytes"},
      {size + 1, 0, "offset_bytes"}, {size, 1, "size_bytes"}, {big, 1, "offset_bytes"}, {1, big, "size_bytes"},
      {big, big, "offset_bytes"},
  };
  std::vector<uint8_t> host(static_cast<std::size_t>(size) + 64, 0x77);
  for (const auto& r : bad) {
    SCOPED_TRACE("offset " + std::to_string(r.offset) + " size " + std::to_string(r.bytes));
    std::fill(host.begin(), host.end(), 0x77);
    EXPECT_EQ(megamoe_buffer_read(buf, r.offset, host.data(), r.bytes, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
    const std::string m1 = last_error();
    EXPECT_TRUE(contains(m1, "'offset_bytes'") || contains(m1, "'size_bytes'")) << m1;
    EXPECT_TRUE(mmt::all_bytes_are(host.data(), host.size(), 0x77)) << "failed read wrote into host memory";
    EXPECT_EQ(megamoe_buffer_write(buf, r.offset, host.data(), r.bytes, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
    const std::string m2 = last_error();
    EXPECT_TRUE(contains(m2, "'offset_bytes'") || contains(m2, "'size_bytes'")) << m2;
    EXPECT_EQ(megamoe_buffer_fill(buf, r.offset, r.bytes, 0x99, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
    const std::string m3 = last_error();
    EXPECT_TRUE(contains(m3, "'offset_bytes'") || contains(m3, "'size_bytes'")) << m3;
  }
  // Nothing changed inside the buffer.
  std::vector<uint8_t> all(static_cast<std::size_t>(size));
  ASSERT_EQ(megamoe_buffer_read(buf, 0, all.data(), size, nullptr), MEGAMOE_SUCCESS);
  EXPECT_TRUE(mmt::all_bytes_are(all.data(), all.size(), 0x11));
  // Exactly the end is fine.
  EXPECT_EQ(megamoe_buffer_read(buf, size, host.data(), 0, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(megamoe_buffer_read(buf, size - 1, host.data(), 1, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(megamoe_buffer_destroy(buf), MEGAMOE_SUCCESS);
}

TEST(Buffer, InvalidArguments) {
  mmt::ScopedContext ctx;
  megamoe_buffer_t out = kSentinelBuffer;
  const int64_t live = megamoe_live_object_count();
  EXPECT_EQ(megamoe_buffer_create(nullptr, 16, &out), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'context'")) << last_error();
  EXPECT_EQ(megamoe_buffer_create(ctx, -1, &out), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'size_bytes'")) << last_error();
  EXPECT_EQ(megamoe_buffer_create(ctx, 16, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'out_buffer'")) << last_error();
  EXPECT_EQ(out, kSentinelBuffer);
  EXPECT_EQ(megamoe_live_object_count(), live);

  megamoe_buffer_t buf = nullptr;
  ASSERT_EQ(megamoe_buffer_create(ctx, 64, &buf), MEGAMOE_SUCCESS);
  uint8_t host[64] = {};
  EXPECT_EQ(megamoe_buffer_write(nullptr, 0, host, 1, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'buffer'")) << last_error();
  EXPECT_EQ(megamoe_buffer_read(nullptr, 0, host, 1, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'buffer'")) << last_error();
  EXPECT_EQ(megamoe_buffer_fill(nullptr, 0, 1, 0, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'buffer'")) << last_error();
  EXPECT_EQ(megamoe_buffer_write(buf, 0, nullptr, 1, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'host'")) << last_error();
  EXPECT_EQ(megamoe_buffer_read(buf, 0, nullptr, 1, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'host'")) << last_error();
  int64_t size = -7;
  EXPECT_EQ(megamoe_buffer_get_size(nullptr, &size), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'buffer'")) << last_error();
  EXPECT_EQ(size, -7);
  EXPECT_EQ(megamoe_buffer_get_size(buf, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'out_size_bytes'")) << last_error();
  void* data = &size;
  int32_t type = -1, id = -1;
  EXPECT_EQ(megamoe_buffer_get_data(nullptr, &data, &type, &id), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "'buffer'")) << last_error();
  EXPECT_EQ(data, static_cast<void*>(&size));
  EXPECT_EQ(megamoe_buffer_destroy(buf), MEGAMOE_SUCCESS);
}

// A CPU buffer's own memory as the host side of a copy: memcpy on overlapping memory (undefined, and an
// ASan report) before it was rejected.
TEST(Buffer, HostMemoryInsideTheBufferIsRejectedAndNothingIsCopied) {
  mmt::ScopedContext ctx;
  const int64_t size = 256;
  megamoe_buffer_t buf = nullptr, other = nullptr;
  ASSERT_EQ(megamoe_buffer_create(ctx, size, &buf), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_buffer_create(ctx, size, &other), MEGAMOE_SUCCESS);
  void* data = nullptr;
  void* other_data = nullptr;
  int32_t type = 0, id = 0;
  ASSERT_EQ(megamoe_buffer_get_data(buf, &data, &type, &id), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_buffer_get_data(other, &other_data, &type, &id), MEGAMOE_SUCCESS);
  auto* bytes = static_cast<uint8_t*>(data);
  for (int64_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i);
  const std::vector<uint8_t> before(bytes, bytes + size);

  struct Overlap {
    int64_t host_offset, buffer_offset, bytes;
  };
  // The same range, a shifted one each way, and one that only touches the buffer's last byte.
  for (const Overlap& o : {Overlap{0, 0, size}, Overlap{10, 0, 64}, Overlap{0, 10, 64}, Overlap{size - 1, 0, 1}}) {
    SCOPED_TRACE("host at +" + std::to_string(o.host_offset) + ", buffer offset " + std::to_string(o.buffer_offset) +
                 ", " + std::to_string(o.bytes) + " bytes");
    EXPECT_EQ(megamoe_buffer_write(buf, o.buffer_offset, bytes + o.host_offset, o.bytes, nullptr),
              MEGAMOE_ERROR_INVALID_ARGUMENT);
    const std::string write_error = last_error();
    EXPECT_TRUE(contains(write_error, "megamoe_buffer_write: argument 'host'")) << write_error;
    EXPECT_TRUE(contains(write_error, "overlaps the buffer's own memory")) << write_error;
    EXPECT_EQ(megamoe_buffer_read(buf, o.buffer_offset, bytes + o.host_offset, o.bytes, nullptr),
              MEGAMOE_ERROR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(last_error(), "megamoe_buffer_read: argument 'host'")) << last_error();
    EXPECT_TRUE(std::equal(before.begin(), before.end(), bytes)) << "a rejected copy changed the buffer";
  }
  // Both ranges are in the message.
  EXPECT_EQ(megamoe_buffer_write(buf, 0, bytes + 16, 32, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  std::ostringstream host_range, buffer_range;
  host_range << "[" << static_cast<void*>(bytes + 16) << ", " << static_cast<void*>(bytes + 16) << " + 32)";
  buffer_range << "[" << data << ", " << data << " + " << size << ")";
  EXPECT_TRUE(contains(last_error(), host_range.str())) << last_error();
  EXPECT_TRUE(contains(last_error(), buffer_range.str())) << last_error();

  // Another buffer's memory is host memory like any other on the CPU backend.
  EXPECT_EQ(megamoe_buffer_write(buf, 0, other_data, size, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(megamoe_buffer_read(buf, 0, other_data, size, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(megamoe_buffer_destroy(other), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_buffer_destroy(buf), MEGAMOE_SUCCESS);
}

#if defined(__SANITIZE_ADDRESS__)
#define MMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MMT_ASAN 1
#endif
#endif

TEST(Buffer, HugeAllocationIsOutOfMemory) {
#if defined(MMT_ASAN)
  // AddressSanitizer aborts on absurd allocation sizes unless told to return NULL.
  const char* opts = std::getenv("ASAN_OPTIONS");
  if (opts == nullptr || std::strstr(opts, "allocator_may_return_null=1") == nullptr) {
    GTEST_SKIP() << "under AddressSanitizer this needs ASAN_OPTIONS=allocator_may_return_null=1";
  }
#endif
  mmt::ScopedContext ctx;
  const int64_t live = megamoe_live_object_count();
  megamoe_buffer_t out = kSentinelBuffer;
  EXPECT_EQ(megamoe_buffer_create(ctx, int64_t{1} << 60, &out), MEGAMOE_ERROR_OUT_OF_MEMORY);
  EXPECT_FALSE(last_error().empty());
  EXPECT_EQ(out, kSentinelBuffer);
  EXPECT_EQ(megamoe_live_object_count(), live);
}

// A CPU buffer's pointer is a valid CPU tensor for the operations.
TEST(Buffer, BufferMemoryServesAsTensorStorage) {
  const uint64_t seed = mmt::fresh_seed();
  MMT_SEED_TRACE(seed);
  mmt::Rng rng(seed);
  mmt::ScopedContext ctx;
  const int64_t M = 5, K = 384;
  auto x = mmt::random_normal(rng, M * K, 3.0);
  megamoe_buffer_t bx = nullptr, bq = nullptr, bs = nullptr;
  ASSERT_EQ(megamoe_buffer_create(ctx, M * K * 4, &bx), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_buffer_create(ctx, M * K, &bq), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_buffer_create(ctx, M * 3 * 4, &bs), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_buffer_write(bx, 0, x.data(), M * K * 4, nullptr), MEGAMOE_SUCCESS);
  void *px = nullptr, *pq = nullptr, *ps = nullptr;
  int32_t type = 0, id = 0;
  ASSERT_EQ(megamoe_buffer_get_data(bx, &px, &type, &id), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_buffer_get_data(bq, &pq, &type, &id), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_buffer_get_data(bs, &ps, &type, &id), MEGAMOE_SUCCESS);
  auto xt = make_tensor(px, MEGAMOE_DTYPE_FP32, {M, K});
  auto qt = make_tensor(pq, MEGAMOE_DTYPE_FP8_E4M3, {M, K});
  auto st = make_tensor(ps, MEGAMOE_DTYPE_FP32, {M, 3});
  xt.device_type = qt.device_type = st.device_type = type;
  xt.device_id = qt.device_id = st.device_id = id;
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, MEGAMOE_QUANT_DEFAULT, nullptr), MEGAMOE_SUCCESS)
      << last_error();
  HostVec<uint8_t> q(static_cast<std::size_t>(M * K)), want_q(q.size());
  HostVec<float> s(static_cast<std::size_t>(M * 3)), want_s(s.size());
  ASSERT_EQ(megamoe_buffer_read(bq, 0, q.data(), M * K, nullptr), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_buffer_read(bs, 0, s.data(), M * 3 * 4, nullptr), MEGAMOE_SUCCESS);
  mmt::ref_quantize_activations(x.data(), M, K, false, want_q.data(), want_s.data());
  EXPECT_TRUE(mmt::bytes_equal(q.data(), want_q.data(), M * K));
  EXPECT_TRUE(mmt::float_bits_equal(s.data(), want_s.data(), M * 3));
  EXPECT_EQ(megamoe_buffer_destroy(bx), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_buffer_destroy(bq), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_buffer_destroy(bs), MEGAMOE_SUCCESS);
}

// ------------------------------------------------------------------------------------------------
// Lifetime: children keep their context alive.
// ------------------------------------------------------------------------------------------------
// One live handle of each kind: a CPU context, a 128-byte buffer, a routed plan (T <= 2, top-1 of one
// expert, N = K = 128) and a one-expert layer (H = I = 128, max_tokens 2) of identity-like BF16 weights,
// enough to run a forward.
struct OneOfEach {
  megamoe_context_t ctx = nullptr;
  megamoe_buffer_t buf = nullptr;
  megamoe_routed_plan_t plan = nullptr;
  megamoe_moe_layer_t layer = nullptr;
};

void create_one_of_each(OneOfEach& h) {
  ASSERT_EQ(megamoe_context_create(MEGAMOE_BACKEND_CPU, 0, &h.ctx), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_buffer_create(h.ctx, 128, &h.buf), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_routed_plan_create(h.ctx, 2, 1, 1, 128, 128, 0, &h.plan), MEGAMOE_SUCCESS) << last_error();
  HostVec<uint16_t> w13(2 * 128 * 128, 0x3F80), w2(128 * 128, 0x3C00);
  const auto w13_t = make_tensor(w13.data(), MEGAMOE_DTYPE_BF16, {1, 256, 128});
  const auto w2_t = make_tensor(w2.data(), MEGAMOE_DTYPE_BF16, {1, 128, 128});
  const megamoe_moe_config_t cfg = mmt::moe_config(1, 1, 128, 128, 2);
  ASSERT_EQ(megamoe_moe_layer_create(h.ctx, &cfg, &w13_t, nullptr, &w2_t, nullptr, nullptr, &h.layer),
            MEGAMOE_SUCCESS)
      << last_error();
}

TEST(Lifetime, DestroyingContextWithLiveChildrenIsSafe) {
  const int64_t base = megamoe_live_object_count();
  OneOfEach h;
  ASSERT_NO_FATAL_FAILURE(create_one_of_each(h));
  const auto [ctx, buf, plan, layer] = h;
  const int64_t H = 128;
  ASSERT_EQ(megamoe_live_object_count(), base + 4);

  EXPECT_EQ(megamoe_context_destroy(ctx), MEGAMOE_SUCCESS);
  // The caller's reference is gone, the children still work.
  uint8_t bytes[128];
  std::memset(bytes, 0x42, sizeof bytes);
  EXPECT_EQ(megamoe_buffer_write(buf, 0, bytes, 128, nullptr), MEGAMOE_SUCCESS) << last_error();
  uint8_t back[128] = {};
  EXPECT_EQ(megamoe_buffer_read(buf, 0, back, 128, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(std::memcmp(bytes, back, 128), 0);

  HostVec<uint16_t> x(static_cast<std::size_t>(2 * H), 0x3F80), y(static_cast<std::size_t>(2 * H), 0xFFFF);
  HostVec<int32_t> idx = {0, 0};
  HostVec<float> wts = {1.0f, 0.5f};
  const auto xt = make_tensor(x.data(), MEGAMOE_DTYPE_BF16, {2, H});
  const auto it = make_tensor(idx.data(), MEGAMOE_DTYPE_INT32, {2, 1});
  const auto wt = make_tensor(wts.data(), MEGAMOE_DTYPE_FP32, {2, 1});
  const auto yt = make_tensor(y.data(), MEGAMOE_DTYPE_BF16, {2, H});
  EXPECT_EQ(megamoe_moe_layer_forward(layer, &xt, nullptr, &it, &wt, &yt, nullptr, nullptr, nullptr), MEGAMOE_SUCCESS)
      << last_error();
  EXPECT_NE(y[0], 0xFFFF);
  EXPECT_FALSE(std::isnan(mmt::bf16_decode(y[0])));
  EXPECT_GT(mmt::bf16_decode(y[0]), 0.0f);

  HostVec<uint8_t> a(static_cast<std::size_t>(2 * 128), 0x38), bw(static_cast<std::size_t>(128 * 128), 0x38);
  HostVec<float> sa(2, 1.0f), sb(1, 1.0f);
  HostVec<int32_t> ti = {0, -1};
  HostVec<uint16_t> d(static_cast<std::size_t>(2 * 128), 0xFFFF);
  const auto at = make_tensor(a.data(), MEGAMOE_DTYPE_FP8_E4M3, {2, 128});
  const auto sat = make_tensor(sa.data(), MEGAMOE_DTYPE_FP32, {2, 1});
  const auto bt = make_tensor(bw.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 128, 128});
  const auto sbt = make_tensor(sb.data(), MEGAMOE_DTYPE_FP32, {1, 1, 1});
  const auto tit = make_tensor(ti.data(), MEGAMOE_DTYPE_INT32, {2, 1});
  const auto dt = make_tensor(d.data(), MEGAMOE_DTYPE_BF16, {2, 1, 128});
  EXPECT_EQ(megamoe_gemm_routed(plan, &at, &sat, &bt, &sbt, &tit, nullptr, nullptr, &dt, nullptr), MEGAMOE_SUCCESS)
      << last_error();
  EXPECT_EQ(mmt::bf16_decode(d[0]), 128.0f);  // 128 products of 1 * 1
  EXPECT_EQ(d[128], 0x0000);

  EXPECT_EQ(megamoe_moe_layer_destroy(layer), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_routed_plan_destroy(plan), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_buffer_destroy(buf), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_live_object_count(), base);
}

// ------------------------------------------------------------------------------------------------
// Stale, forged and wrong-kind handles: rejected without being dereferenced (under ASan, a handle
// used after its destroy was a heap-use-after-free while handles were checked through their memory).
// ------------------------------------------------------------------------------------------------
void expect_not_live(megamoe_status_t status, const std::string& argument, const std::string& kind) {
  EXPECT_EQ(status, MEGAMOE_ERROR_INVALID_ARGUMENT) << megamoe_status_string(status);
  EXPECT_TRUE(contains(last_error(), "argument '" + argument + "': handle is not a live " + kind)) << last_error();
}

TEST(Lifetime, EveryHandleKindUsedAfterDestroyIsRejected) {
  const int64_t base = megamoe_live_object_count();
  OneOfEach h;
  ASSERT_NO_FATAL_FAILURE(create_one_of_each(h));
  const auto [ctx, buf, plan, layer] = h;
  ASSERT_EQ(megamoe_moe_layer_destroy(layer), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_routed_plan_destroy(plan), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_buffer_destroy(buf), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_context_destroy(ctx), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_live_object_count(), base);

  // Valid arguments everywhere, so that only the handle is wrong.
  HostVec<uint16_t> w13(2 * 128 * 128, 0x3F80), w2(128 * 128, 0x3C00);
  const auto w13_t = make_tensor(w13.data(), MEGAMOE_DTYPE_BF16, {1, 256, 128});
  const auto w2_t = make_tensor(w2.data(), MEGAMOE_DTYPE_BF16, {1, 128, 128});
  const megamoe_moe_config_t cfg = mmt::moe_config(1, 1, 128, 128, 1);
  HostVec<float> x(128, 1.0f), scales(1, 1.0f);
  HostVec<uint8_t> q(128);
  HostVec<uint16_t> y(128);
  HostVec<int32_t> idx(1, 0);
  const auto xt = make_tensor(x.data(), MEGAMOE_DTYPE_FP32, {1, 128});
  const auto qt = make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 128});
  const auto st = make_tensor(scales.data(), MEGAMOE_DTYPE_FP32, {1, 1});
  const auto bt = make_tensor(w2.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 128, 128});
  const auto it = make_tensor(idx.data(), MEGAMOE_DTYPE_INT32, {1, 1});
  const auto wt = make_tensor(x.data(), MEGAMOE_DTYPE_FP32, {1, 1});
  const auto dt = make_tensor(y.data(), MEGAMOE_DTYPE_BF16, {1, 1, 128});
  const auto yt = make_tensor(y.data(), MEGAMOE_DTYPE_BF16, {1, 128});
  const auto xb = make_tensor(w13.data(), MEGAMOE_DTYPE_BF16, {1, 128});

  const std::string c = "megamoe_context_t", b = "megamoe_buffer_t", p = "megamoe_routed_plan_t",
                    l = "megamoe_moe_layer_t";
  megamoe_backend_t backend = MEGAMOE_BACKEND_BEST;
  expect_not_live(megamoe_context_get_backend(ctx, &backend), "context", c);
  EXPECT_EQ(backend, MEGAMOE_BACKEND_BEST);
  expect_not_live(megamoe_context_set_num_threads(ctx, 1), "context", c);
  megamoe_device_info_t info{};
  info.struct_size = sizeof info;
  expect_not_live(megamoe_context_get_device_info(ctx, &info), "context", c);
  expect_not_live(megamoe_context_synchronize(ctx, nullptr), "context", c);
  megamoe_buffer_t new_buf = nullptr;
  expect_not_live(megamoe_buffer_create(ctx, 16, &new_buf), "context", c);
  EXPECT_EQ(new_buf, nullptr);
  megamoe_routed_plan_t new_plan = nullptr;
  expect_not_live(megamoe_routed_plan_create(ctx, 1, 1, 1, 128, 128, 0, &new_plan), "context", c);
  megamoe_moe_layer_t new_layer = nullptr;
  expect_not_live(megamoe_moe_layer_create(ctx, &cfg, &w13_t, nullptr, &w2_t, nullptr, nullptr, &new_layer),
                  "context", c);
  expect_not_live(megamoe_quantize_activations(ctx, &xt, &qt, &st, 0, nullptr), "context", c);
  expect_not_live(megamoe_gemm_dense(ctx, &qt, &st, &qt, &st, &yt, nullptr), "context", c);
  expect_not_live(megamoe_context_destroy(ctx), "context", c);

  void* data = nullptr;
  int32_t type = 0, id = 0;
  int64_t size = -1;
  uint8_t host[16] = {};
  expect_not_live(megamoe_buffer_get_data(buf, &data, &type, &id), "buffer", b);
  expect_not_live(megamoe_buffer_get_size(buf, &size), "buffer", b);
  EXPECT_EQ(size, -1);
  expect_not_live(megamoe_buffer_write(buf, 0, host, 16, nullptr), "buffer", b);
  expect_not_live(megamoe_buffer_read(buf, 0, host, 16, nullptr), "buffer", b);
  expect_not_live(megamoe_buffer_fill(buf, 0, 16, 0, nullptr), "buffer", b);
  expect_not_live(megamoe_buffer_destroy(buf), "buffer", b);

  expect_not_live(megamoe_gemm_routed(plan, &qt, &st, &bt, &st, &it, nullptr, nullptr, &dt, nullptr), "plan", p);
  expect_not_live(megamoe_routed_plan_destroy(plan), "plan", p);

  int64_t workspace = -1;
  expect_not_live(megamoe_moe_layer_get_workspace_size(layer, &workspace), "layer", l);
  EXPECT_EQ(workspace, -1);
  expect_not_live(megamoe_moe_layer_forward(layer, &xb, nullptr, &it, &wt, &yt, nullptr, nullptr, nullptr), "layer", l);
  expect_not_live(megamoe_moe_layer_destroy(layer), "layer", l);
  EXPECT_EQ(megamoe_live_object_count(), base);
}

TEST(Lifetime, AHandleOfAnotherKindOrAForgedOneIsRejected) {
  mmt::ScopedContext ctx;
  megamoe_buffer_t buf = nullptr;
  ASSERT_EQ(megamoe_buffer_create(ctx, 64, &buf), MEGAMOE_SUCCESS);
  megamoe_backend_t backend = MEGAMOE_BACKEND_BEST;
  expect_not_live(megamoe_context_get_backend(reinterpret_cast<megamoe_context_t>(buf), &backend), "context",
                  "megamoe_context_t");
  EXPECT_TRUE(contains(last_error(), "it is a megamoe_buffer_t")) << last_error();
  int64_t size = -1;
  expect_not_live(megamoe_buffer_get_size(reinterpret_cast<megamoe_buffer_t>(ctx.get()), &size), "buffer",
                  "megamoe_buffer_t");
  EXPECT_TRUE(contains(last_error(), "it is a megamoe_context_t")) << last_error();
  expect_not_live(megamoe_moe_layer_destroy(reinterpret_cast<megamoe_moe_layer_t>(buf)), "layer", "megamoe_moe_layer_t");

  // Memory that merely looks like an object, or a pointer to the buffer's data, is no handle.
  alignas(64) static unsigned char zeros[256] = {};
  void* data = nullptr;
  int32_t type = 0, id = 0;
  ASSERT_EQ(megamoe_buffer_get_data(buf, &data, &type, &id), MEGAMOE_SUCCESS);
  expect_not_live(megamoe_context_synchronize(reinterpret_cast<megamoe_context_t>(zeros), nullptr), "context",
                  "megamoe_context_t");
  expect_not_live(megamoe_buffer_get_size(static_cast<megamoe_buffer_t>(data), &size), "buffer", "megamoe_buffer_t");
  expect_not_live(megamoe_buffer_get_size(kSentinelBuffer, &size), "buffer", "megamoe_buffer_t");
  EXPECT_EQ(size, -1);
  EXPECT_EQ(megamoe_buffer_destroy(buf), MEGAMOE_SUCCESS);
}

// Handle values are never reused, so a stale handle cannot come to name a newer object.
TEST(Lifetime, AStaleHandleNeverNamesANewerObject) {
  mmt::ScopedContext ctx;
  std::vector<megamoe_buffer_t> destroyed;
  for (int i = 0; i < 64; ++i) {
    megamoe_buffer_t buf = nullptr;
    ASSERT_EQ(megamoe_buffer_create(ctx, 64, &buf), MEGAMOE_SUCCESS);
    for (megamoe_buffer_t old : destroyed) ASSERT_NE(buf, old) << "a destroyed handle's value was given out again";
    ASSERT_EQ(megamoe_buffer_destroy(buf), MEGAMOE_SUCCESS);
    destroyed.push_back(buf);
  }
  megamoe_buffer_t live = nullptr;
  ASSERT_EQ(megamoe_buffer_create(ctx, 64, &live), MEGAMOE_SUCCESS);
  for (megamoe_buffer_t old : destroyed) {
    int64_t size = -1;
    expect_not_live(megamoe_buffer_get_size(old, &size), "buffer", "megamoe_buffer_t");
  }
  EXPECT_EQ(megamoe_buffer_destroy(live), MEGAMOE_SUCCESS);
}

}  // namespace
