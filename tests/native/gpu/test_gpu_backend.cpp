// CUDA backend infrastructure through the public API: availability reasons, device information,
// buffers (write / read / fill), and the precise status of operations not on the GPU yet.
#include <string>

#include "gpu/gpu_support.h"

namespace {

using mmt::HostVec;
using mmt_gpu::Contexts;
using mmt_gpu::DeviceBuffer;

TEST(GpuBackend, DeviceOutOfRangeIsExplained) {
  MMT_REQUIRE_CUDA();
  EXPECT_EQ(megamoe_backend_available(MEGAMOE_BACKEND_CUDA, 4096), MEGAMOE_ERROR_BACKEND_UNAVAILABLE);
  const std::string message = megamoe_last_error_message();
  EXPECT_NE(message.find("out of range"), std::string::npos) << message;
  // A negative ordinal is no device at all: a malformed argument, not an unavailable backend.
  EXPECT_EQ(megamoe_backend_available(MEGAMOE_BACKEND_CUDA, -1), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(megamoe_last_error_message()).find("'device_id'"), std::string::npos)
      << megamoe_last_error_message();
}

TEST(GpuBackend, DeviceInfo) {
  MMT_REQUIRE_CUDA();
  Contexts c;
  ASSERT_NE(c.gpu, nullptr) << megamoe_last_error_message();
  megamoe_backend_t backend = MEGAMOE_BACKEND_BEST;
  MMT_OK(megamoe_context_get_backend(c.gpu, &backend));
  EXPECT_EQ(backend, MEGAMOE_BACKEND_CUDA);
  megamoe_device_info_t info;
  std::memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  MMT_OK(megamoe_context_get_device_info(c.gpu, &info));
  EXPECT_EQ(info.backend, MEGAMOE_BACKEND_CUDA);
  EXPECT_EQ(info.compute_capability_major, 9);
  EXPECT_EQ(info.compute_capability_minor, 0);
  EXPECT_GT(info.multiprocessor_count, 0);
  EXPECT_GT(info.driver_version, 0);
  EXPECT_GT(info.runtime_version, 0);
  EXPECT_GT(info.total_memory_bytes, int64_t{1} << 30);
  EXPECT_GT(info.l2_cache_bytes, 0);
  EXPECT_GT(std::strlen(info.name), 0u);
  std::printf("  %s: sm_%d%d, %d SMs, driver %d, runtime %d, %lld MiB, L2 %lld KiB\n", info.name,
              info.compute_capability_major, info.compute_capability_minor, info.multiprocessor_count,
              info.driver_version, info.runtime_version, static_cast<long long>(info.total_memory_bytes >> 20),
              static_cast<long long>(info.l2_cache_bytes >> 10));
}

TEST(GpuBackend, BufferRoundTripAndFill) {
  MMT_REQUIRE_CUDA();
  Contexts c;
  ASSERT_NE(c.gpu, nullptr) << megamoe_last_error_message();
  mmt::Rng rng(mmt::fresh_seed());
  HostVec<uint8_t> data(1 << 20);
  for (auto& b : data) b = static_cast<uint8_t>(rng.bits32());
  DeviceBuffer buf(c.gpu, static_cast<int64_t>(data.size()));
  buf.upload(data);
  const auto back = buf.download<uint8_t>(static_cast<int64_t>(data.size()));
  EXPECT_TRUE(mmt::bytes_equal(back.data(), data.data(), static_cast<int64_t>(data.size())));
  buf.poison(0x3C);
  const auto filled = buf.download<uint8_t>(static_cast<int64_t>(data.size()));
  EXPECT_TRUE(mmt::all_bytes_are(filled.data(), filled.size(), 0x3C));
  MMT_OK(megamoe_context_synchronize(c.gpu, nullptr));
}

// K beyond the supported 65536 is refused at creation with the limit in the message, not at the first
// call; plans at the limit and below are created.
TEST(GpuBackend, RoutedPlanRefusesUnsupportedShapesAtCreation) {
  MMT_REQUIRE_CUDA();
  Contexts c;
  ASSERT_NE(c.gpu, nullptr) << megamoe_last_error_message();
  megamoe_routed_plan_t plan = nullptr;
  EXPECT_EQ(megamoe_routed_plan_create(c.gpu, 16, 2, 4, 128, 65536 + 128, 0, &plan), MEGAMOE_ERROR_UNSUPPORTED);
  EXPECT_EQ(plan, nullptr);
  EXPECT_NE(std::string(megamoe_last_error_message()).find("K = 65664"), std::string::npos) << megamoe_last_error_message();
  ASSERT_EQ(megamoe_routed_plan_create(c.gpu, 16, 2, 4, 128, 65536, 0, &plan), MEGAMOE_SUCCESS) << megamoe_last_error_message();
  megamoe_routed_plan_destroy(plan);
  plan = nullptr;
  ASSERT_EQ(megamoe_routed_plan_create(c.gpu, 16, 2, 4, 128, 128, MEGAMOE_PLAN_EXPERT_SPECIALIZATION, &plan),
            MEGAMOE_SUCCESS)
      << megamoe_last_error_message();
  megamoe_routed_plan_destroy(plan);
}

}  // namespace
