// Version, build info, status strings, the thread-local last error, struct sizes and live objects.
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.h"

namespace {

TEST(Version, MacroMatchesLoadedLibrary) {
  EXPECT_EQ(megamoe_version(), MEGAMOE_VERSION);
  EXPECT_EQ(MEGAMOE_VERSION, MEGAMOE_VERSION_MAJOR * 10000 + MEGAMOE_VERSION_MINOR * 100 + MEGAMOE_VERSION_PATCH);
}

// "digits.digits.digits" (no std::regex: GCC 12 warns inside it under the sanitizers).
bool is_major_minor_patch(const std::string& s) {
  int parts = 0;
  std::size_t i = 0;
  while (i <= s.size()) {
    std::size_t j = i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    if (j == i) return false;
    ++parts;
    if (j == s.size()) break;
    if (s[j] != '.') return false;
    i = j + 1;
  }
  return parts == 3;
}

TEST(Version, StringIsMajorMinorPatch) {
  const char* v = megamoe_version_string();
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(is_major_minor_patch(v)) << v;
  const std::string want = std::to_string(MEGAMOE_VERSION_MAJOR) + "." + std::to_string(MEGAMOE_VERSION_MINOR) + "." +
                           std::to_string(MEGAMOE_VERSION_PATCH);
  EXPECT_EQ(std::string(v), want);
  // Static storage: the same pointer every time.
  EXPECT_EQ(megamoe_version_string(), v);
}

TEST(Version, BuildInfoIsKeyValueList) {
  const char* info = megamoe_build_info();
  ASSERT_NE(info, nullptr);
  const std::string s(info);
  ASSERT_FALSE(s.empty());
  // "key=value;key=value[;]"
  std::size_t start = 0;
  int pairs = 0;
  while (start < s.size()) {
    std::size_t end = s.find(';', start);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(start, end - start);
    const std::size_t eq = item.find('=');
    EXPECT_NE(eq, std::string::npos) << "item '" << item << "' of '" << s << "' is not key=value";
    EXPECT_GT(eq, 0u) << "empty key in '" << s << "'";
    ++pairs;
    start = end + 1;
  }
  EXPECT_GE(pairs, 1);
  EXPECT_EQ(megamoe_build_info(), info);
}

TEST(Status, EveryStatusHasItsConstantName) {
  const std::vector<std::pair<megamoe_status_t, const char*>> names = {
      {MEGAMOE_SUCCESS, "MEGAMOE_SUCCESS"},
      {MEGAMOE_ERROR_INVALID_ARGUMENT, "MEGAMOE_ERROR_INVALID_ARGUMENT"},
      {MEGAMOE_ERROR_UNSUPPORTED, "MEGAMOE_ERROR_UNSUPPORTED"},
      {MEGAMOE_ERROR_BACKEND_UNAVAILABLE, "MEGAMOE_ERROR_BACKEND_UNAVAILABLE"},
      {MEGAMOE_ERROR_OUT_OF_MEMORY, "MEGAMOE_ERROR_OUT_OF_MEMORY"},
      {MEGAMOE_ERROR_DEVICE, "MEGAMOE_ERROR_DEVICE"},
      {MEGAMOE_ERROR_CANCELLED, "MEGAMOE_ERROR_CANCELLED"},
      {MEGAMOE_ERROR_INTERNAL, "MEGAMOE_ERROR_INTERNAL"},
  };
  for (const auto& [status, name] : names) {
    const char* got = megamoe_status_string(status);
    ASSERT_NE(got, nullptr);
    EXPECT_STREQ(got, name);
  }
}

TEST(Status, UnknownValuesAreUnknown) {
  for (int v : {-1, 8, 9, 100, 0x7FFFFFFF}) {
    const char* got = megamoe_status_string(mmt::raw_enum<megamoe_status_t>(v));
    ASSERT_NE(got, nullptr);
    EXPECT_STREQ(got, "unknown status") << v;
  }
}

// A call that is certain to fail on any build: negative buffer size on a NULL context.
megamoe_status_t failing_call() {
  megamoe_buffer_t buffer = nullptr;
  return megamoe_buffer_create(nullptr, 16, &buffer);
}

TEST(LastError, FailureSetsMessageNamingFunctionAndArgument) {
  ASSERT_EQ(failing_call(), MEGAMOE_ERROR_INVALID_ARGUMENT);
  const std::string msg = megamoe_last_error_message();
  EXPECT_NE(msg.find("buffer_create"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'context'"), std::string::npos) << msg;
}

TEST(LastError, SuccessDoesNotClearIt) {
  ASSERT_EQ(failing_call(), MEGAMOE_ERROR_INVALID_ARGUMENT);
  const std::string before = megamoe_last_error_message();
  ASSERT_FALSE(before.empty());
  megamoe_context_t ctx = nullptr;
  ASSERT_EQ(megamoe_context_create(MEGAMOE_BACKEND_CPU, 0, &ctx), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_context_destroy(ctx), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_version() > 0, true);
  EXPECT_EQ(std::string(megamoe_last_error_message()), before);
}

TEST(LastError, IsEmptyOnAFreshThread) {
  ASSERT_EQ(failing_call(), MEGAMOE_ERROR_INVALID_ARGUMENT);  // this thread has a message
  std::string other;
  const char* other_ptr = nullptr;
  std::thread t([&] {
    other_ptr = megamoe_last_error_message();
    other = other_ptr ? other_ptr : "(null)";
  });
  t.join();
  EXPECT_EQ(other, "");
}

TEST(LastError, ErrorOnAnotherThreadDoesNotAppearHere) {
  // This thread: a known message from a negative thread count.
  megamoe_context_t ctx = nullptr;
  ASSERT_EQ(megamoe_context_create(MEGAMOE_BACKEND_CPU, 0, &ctx), MEGAMOE_SUCCESS);
  ASSERT_EQ(megamoe_context_set_num_threads(ctx, -5), MEGAMOE_ERROR_INVALID_ARGUMENT);
  const std::string mine = megamoe_last_error_message();
  ASSERT_FALSE(mine.empty());

  std::string theirs;
  std::thread t([&] {
    EXPECT_EQ(failing_call(), MEGAMOE_ERROR_INVALID_ARGUMENT);
    theirs = megamoe_last_error_message();
  });
  t.join();
  EXPECT_FALSE(theirs.empty());
  EXPECT_NE(theirs, mine);
  EXPECT_EQ(std::string(megamoe_last_error_message()), mine);
  EXPECT_EQ(megamoe_context_destroy(ctx), MEGAMOE_SUCCESS);
}

TEST(LastError, ManyThreadsKeepTheirOwnMessages) {
  constexpr int kThreads = 8;
  std::atomic<int> ready{0};
  std::vector<std::string> seen(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      // Even threads fail on the buffer size, odd threads on the context.
      megamoe_buffer_t b = nullptr;
      if (i % 2 == 0) {
        megamoe_context_t ctx = nullptr;
        if (megamoe_context_create(MEGAMOE_BACKEND_CPU, 0, &ctx) != MEGAMOE_SUCCESS) return;
        EXPECT_EQ(megamoe_buffer_create(ctx, -1, &b), MEGAMOE_ERROR_INVALID_ARGUMENT);
        megamoe_context_destroy(ctx);
      } else {
        EXPECT_EQ(megamoe_buffer_create(nullptr, 1, &b), MEGAMOE_ERROR_INVALID_ARGUMENT);
      }
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();
      seen[static_cast<std::size_t>(i)] = megamoe_last_error_message();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    const std::string& s = seen[static_cast<std::size_t>(i)];
    if (i % 2 == 0) {
      EXPECT_NE(s.find("'size_bytes'"), std::string::npos) << "thread " << i << ": " << s;
    } else {
      EXPECT_NE(s.find("'context'"), std::string::npos) << "thread " << i << ": " << s;
    }
  }
}

TEST(StructSize, MatchesThisCompilation) {
  EXPECT_EQ(megamoe_struct_size("megamoe_tensor_t"), static_cast<int64_t>(sizeof(megamoe_tensor_t)));
  EXPECT_EQ(megamoe_struct_size("megamoe_device_info_t"), static_cast<int64_t>(sizeof(megamoe_device_info_t)));
  EXPECT_EQ(megamoe_struct_size("megamoe_moe_config_t"), static_cast<int64_t>(sizeof(megamoe_moe_config_t)));
}

TEST(StructSize, UnknownNamesGiveMinusOne) {
  for (const char* name : {"", "megamoe_tensor", "megamoe_context_t", "MEGAMOE_TENSOR_T", "megamoe_tensor_t ", "int"})
    EXPECT_EQ(megamoe_struct_size(name), -1) << "'" << name << "'";
  EXPECT_EQ(megamoe_struct_size(nullptr), -1);
}

TEST(LiveObjects, CountsEveryKindAndReturnsToBaseline) {
  const int64_t base = megamoe_live_object_count();
  ASSERT_GE(base, 0);
  megamoe_context_t ctx = nullptr;
  ASSERT_EQ(megamoe_context_create(MEGAMOE_BACKEND_CPU, 0, &ctx), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_live_object_count(), base + 1);
  megamoe_buffer_t buf = nullptr;
  ASSERT_EQ(megamoe_buffer_create(ctx, 256, &buf), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_live_object_count(), base + 2);
  megamoe_routed_plan_t plan = nullptr;
  ASSERT_EQ(megamoe_routed_plan_create(ctx, 4, 2, 2, 128, 128, MEGAMOE_PLAN_DEFAULT, &plan), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_live_object_count(), base + 3);

  // A small layer from BF16 weights (zeros are fine here).
  mmt::HostVec<uint16_t> w13(2 * 256 * 128), w2(2 * 128 * 128);
  const auto w13_t = mmt::make_tensor(w13.data(), MEGAMOE_DTYPE_BF16, {2, 256, 128});
  const auto w2_t = mmt::make_tensor(w2.data(), MEGAMOE_DTYPE_BF16, {2, 128, 128});
  const megamoe_moe_config_t cfg = mmt::moe_config(2, 1, 128, 128, 4);
  megamoe_moe_layer_t layer = nullptr;
  ASSERT_EQ(megamoe_moe_layer_create(ctx, &cfg, &w13_t, nullptr, &w2_t, nullptr, nullptr, &layer), MEGAMOE_SUCCESS)
      << megamoe_last_error_message();
  EXPECT_EQ(megamoe_live_object_count(), base + 4);

  // Failed creations add nothing.
  megamoe_buffer_t bad = nullptr;
  EXPECT_NE(megamoe_buffer_create(ctx, -1, &bad), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_live_object_count(), base + 4);

  EXPECT_EQ(megamoe_moe_layer_destroy(layer), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_live_object_count(), base + 3);
  EXPECT_EQ(megamoe_routed_plan_destroy(plan), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_live_object_count(), base + 2);
  EXPECT_EQ(megamoe_buffer_destroy(buf), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_live_object_count(), base + 1);
  EXPECT_EQ(megamoe_context_destroy(ctx), MEGAMOE_SUCCESS);
  EXPECT_EQ(megamoe_live_object_count(), base);
}

}  // namespace
