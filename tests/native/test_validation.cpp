// Argument validation of every operation entry point, table-driven. Each case starts from a valid
// call (checked to succeed), changes one thing, and requires:
//  - the expected status (MEGAMOE_ERROR_INVALID_ARGUMENT unless stated),
//  - megamoe_last_error_message() naming the function and the argument ("'b'"),
//  - nothing written: every tensor's bytes (outputs poisoned beforehand) and out-handles unchanged,
//    no new live objects.
// Generic cases are derived for every tensor argument (NULL descriptor, wrong dtype, wrong rank,
// negative extent, non-dense strides, misaligned data, NULL data with elements, CUDA device on a
// CPU context, nonzero device id); specific cases cover shape relations, index ranges, scalars and
// config fields.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace {

using mmt::HostVec;
using mmt::last_error;

const std::vector<megamoe_dtype_t> kAllDtypes = {MEGAMOE_DTYPE_FP8_E4M3, MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32,
                                                 MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64};

// ------------------------------------------------------------------------------------------------
// A call under construction
// ------------------------------------------------------------------------------------------------
struct TensorArg {
  std::string name;
  megamoe_tensor_t desc{};
  HostVec<uint8_t> storage;
  bool present = true;
  bool output = false;
  bool optional = false;                 // NULL is a valid value
  std::vector<megamoe_dtype_t> allowed;  // every other dtype must be rejected
  std::vector<int32_t> ok_ranks;         // ranks the function accepts for this argument
};

class Call {
 public:
  explicit Call(megamoe_context_t context) : ctx(context) {}
  ~Call() {
    if (owned_plan != nullptr) {
      EXPECT_EQ(megamoe_routed_plan_destroy(owned_plan), MEGAMOE_SUCCESS);
    }
    if (owned_layer != nullptr) {
      EXPECT_EQ(megamoe_moe_layer_destroy(owned_layer), MEGAMOE_SUCCESS);
    }
  }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // Adds a tensor with zeroed storage (8x the bytes + 4 KiB, so that mutated descriptors stay
  // inside owned memory even if a faulty implementation read them).
  TensorArg& add(const std::string& name, megamoe_dtype_t dtype, const std::vector<int64_t>& shape,
                 std::vector<megamoe_dtype_t> allowed, bool output = false, bool optional = false) {
    auto a = std::make_unique<TensorArg>();
    a->name = name;
    const int64_t bytes = mmt::numel(shape) * mmt::dtype_bytes(dtype);
    a->storage.resize(static_cast<std::size_t>(bytes * 8 + 4096));
    a->desc = mmt::make_tensor(a->storage.data(), dtype, shape);
    a->output = output;
    a->optional = optional;
    a->allowed = std::move(allowed);
    a->ok_ranks = {static_cast<int32_t>(shape.size())};
    args.push_back(std::move(a));
    return *args.back();
  }

  TensorArg& arg(const std::string& name) {
    for (auto& a : args)
      if (a->name == name) return *a;
    ADD_FAILURE() << "no argument " << name;
    return *args.front();
  }
  const megamoe_tensor_t* t(const std::string& name) {
    TensorArg& a = arg(name);
    return a.present ? &a.desc : nullptr;
  }
  template <typename T>
  T* data(const std::string& name) {
    return reinterpret_cast<T*>(arg(name).storage.data());
  }
  // Changes the shape keeping the data pointer (dense strides recomputed).
  void reshape(const std::string& name, const std::vector<int64_t>& shape) {
    TensorArg& a = arg(name);
    a.desc = mmt::make_tensor(a.desc.data, static_cast<megamoe_dtype_t>(a.desc.dtype), shape);
  }
  void set_dtype(const std::string& name, megamoe_dtype_t dtype) { arg(name).desc.dtype = dtype; }

  void poison_outputs() {
    for (auto& a : args)
      if (a->output) mmt::poison(a->storage);
  }
  std::vector<HostVec<uint8_t>> snapshot() const {
    std::vector<HostVec<uint8_t>> s;
    for (const auto& a : args) s.push_back(a->storage);
    return s;
  }

  megamoe_context_t ctx;
  megamoe_routed_plan_t plan = nullptr, owned_plan = nullptr;
  megamoe_moe_layer_t layer = nullptr, owned_layer = nullptr;
  uint32_t flags = 0;
  int64_t expected_m = 0;
  int32_t inverse = 0;
  megamoe_moe_config_t config{};
  bool config_present = true;
  std::vector<std::unique_ptr<TensorArg>> args;
};

struct EntryPoint {
  std::string function;  // without the megamoe_ prefix; the message must contain it
  std::function<void(Call&)> build;
  std::function<megamoe_status_t(Call&)> invoke;
  bool creates_layer = false;  // megamoe_moe_layer_create: check out_layer and live objects
};

struct Case {
  std::string label;
  std::function<void(Call&)> mutate;
  std::vector<std::string> names;  // the message must contain at least one of these
  megamoe_status_t want = MEGAMOE_ERROR_INVALID_ARGUMENT;
};

// Out-handle of layer creation, observed by the runner.
megamoe_moe_layer_t g_out_layer = nullptr;
const auto kSentinelLayer = reinterpret_cast<megamoe_moe_layer_t>(uintptr_t{0x5A5A5A80});

std::string q(const std::string& name) { return "'" + name + "'"; }

// ------------------------------------------------------------------------------------------------
// Generic descriptor mutations for every tensor argument
// ------------------------------------------------------------------------------------------------
std::vector<Case> generic_cases(const EntryPoint& ep, megamoe_context_t ctx) {
  Call probe(ctx);
  ep.build(probe);
  std::vector<Case> cases;
  for (const auto& ap : probe.args) {
    const TensorArg& a = *ap;
    if (!a.present) continue;
    const std::string n = a.name;
    const std::vector<std::string> names = {q(n)};
    if (!a.optional) cases.push_back({n + ": NULL descriptor", [n](Call& c) { c.arg(n).present = false; }, names});
    for (megamoe_dtype_t d : kAllDtypes) {
      if (std::find(a.allowed.begin(), a.allowed.end(), d) != a.allowed.end()) continue;
      cases.push_back({n + ": dtype " + std::to_string(d), [n, d](Call& c) { c.set_dtype(n, d); }, names});
    }
    for (int32_t raw : {0, 6, 99, -1}) {
      cases.push_back({n + ": dtype value " + std::to_string(raw),
                       [n, raw](Call& c) { c.arg(n).desc.dtype = raw; }, names});
    }
    const int32_t rank = a.desc.rank;
    auto rank_ok = [&](int32_t r) { return std::find(a.ok_ranks.begin(), a.ok_ranks.end(), r) != a.ok_ranks.end(); };
    for (int32_t r : {0, 5, -1}) {
      cases.push_back({n + ": rank " + std::to_string(r), [n, r](Call& c) { c.arg(n).desc.rank = r; }, names});
    }
    if (rank < MEGAMOE_MAX_RANK && !rank_ok(rank + 1)) {
      cases.push_back({n + ": extra trailing dimension of 1", [n](Call& c) {
                         TensorArg& t = c.arg(n);
                         std::vector<int64_t> s(t.desc.shape, t.desc.shape + t.desc.rank);
                         s.push_back(1);
                         c.reshape(n, s);
                       },
                       names});
    }
    if (rank > 1 && !rank_ok(rank - 1)) {
      cases.push_back({n + ": leading dimensions merged", [n](Call& c) {
                         TensorArg& t = c.arg(n);
                         std::vector<int64_t> s(t.desc.shape + 1, t.desc.shape + t.desc.rank);
                         s[0] *= t.desc.shape[0];
                         c.reshape(n, s);
                       },
                       names});
    }
    cases.push_back({n + ": negative extent", [n](Call& c) {
                       TensorArg& t = c.arg(n);
                       t.desc.shape[0] = -t.desc.shape[0] - 1;
                     },
                     names});
    cases.push_back({n + ": extent 2^62 (size overflows)", [n](Call& c) { c.arg(n).desc.shape[0] = int64_t{1} << 62; },
                     names});
    // Non-dense: pad the outermost dimension with extent > 1 (not the innermost), or a stride of 2
    // on the innermost.
    int32_t pad_dim = -1;
    for (int32_t i = 0; i + 1 < rank; ++i)
      if (a.desc.shape[i] > 1) {
        pad_dim = i;
        break;
      }
    if (pad_dim >= 0) {
      cases.push_back({n + ": padded stride of dimension " + std::to_string(pad_dim),
                       [n, pad_dim](Call& c) { c.arg(n).desc.strides[pad_dim] += 16; }, names});
    }
    if (rank >= 1 && a.desc.shape[rank - 1] > 1) {
      cases.push_back({n + ": innermost stride 2", [n, rank](Call& c) { c.arg(n).desc.strides[rank - 1] = 2; }, names});
      if (rank >= 2) {
        cases.push_back({n + ": transposed (column-major) strides", [n, rank](Call& c) {
                           TensorArg& t = c.arg(n);
                           t.desc.strides[rank - 1] = t.desc.shape[rank - 2];
                           t.desc.strides[rank - 2] = 1;
                         },
                         names});
      }
    }
    int64_t elements = 1;
    for (int32_t i = 0; i < rank; ++i) elements *= a.desc.shape[i];
    if (elements > 0) {
      for (int offset : {1, 2, 8}) {
        cases.push_back({n + ": data misaligned by " + std::to_string(offset), [n, offset](Call& c) {
                           TensorArg& t = c.arg(n);
                           t.desc.data = static_cast<uint8_t*>(t.desc.data) + offset;
                         },
                         names});
      }
      cases.push_back({n + ": NULL data with elements", [n](Call& c) { c.arg(n).desc.data = nullptr; }, names});
    }
    cases.push_back({n + ": CUDA device on a CPU context", [n](Call& c) { c.arg(n).desc.device_type = MEGAMOE_DEVICE_CUDA; },
                     names});
    cases.push_back({n + ": device type 7", [n](Call& c) { c.arg(n).desc.device_type = 7; }, names});
    cases.push_back({n + ": CPU device id 1", [n](Call& c) { c.arg(n).desc.device_id = 1; }, names});
  }
  // Outputs must not overlap inputs (docs/API.md): alias every output with every input.
  for (const auto& op : probe.args) {
    if (!op->output || !op->present) continue;
    for (const auto& ip : probe.args) {
      if (ip->output || !ip->present || ip.get() == op.get()) continue;
      const std::string o = op->name, i = ip->name;
      cases.push_back({o + " aliases input " + i, [o, i](Call& c) { c.arg(o).desc.data = c.arg(i).desc.data; },
                       {q(o), q(i)}});
    }
  }
  return cases;
}

// ------------------------------------------------------------------------------------------------
// Runner
// ------------------------------------------------------------------------------------------------
void run_entry_point(const EntryPoint& ep, const std::vector<Case>& specific) {
  mmt::ScopedContext ctx;
  {
    SCOPED_TRACE(ep.function + ": valid baseline");
    Call c(ctx);
    ep.build(c);
    g_out_layer = kSentinelLayer;
    ASSERT_EQ(ep.invoke(c), MEGAMOE_SUCCESS) << "the unmodified call must succeed: " << last_error();
    if (ep.creates_layer) {
      ASSERT_NE(g_out_layer, kSentinelLayer);
      EXPECT_EQ(megamoe_moe_layer_destroy(g_out_layer), MEGAMOE_SUCCESS);
    }
  }
  std::vector<Case> cases = generic_cases(ep, ctx);
  cases.insert(cases.end(), specific.begin(), specific.end());
  ::testing::Test::RecordProperty("cases", static_cast<int>(cases.size()));
  if (std::getenv("MEGAMOE_TEST_VERBOSE")) std::printf("[cases] %s %zu\n", ep.function.c_str(), cases.size());
  int failures = 0;
  for (const Case& cs : cases) {
    SCOPED_TRACE(ep.function + ": " + cs.label);
    Call c(ctx);
    ep.build(c);
    cs.mutate(c);
    c.poison_outputs();
    const auto before = c.snapshot();
    const int64_t live = megamoe_live_object_count();
    g_out_layer = kSentinelLayer;
    const megamoe_status_t st = ep.invoke(c);
    const std::string msg = last_error();
    const int parts_before = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
    EXPECT_EQ(st, cs.want) << megamoe_status_string(st) << ": " << msg;
    if (st != MEGAMOE_SUCCESS) {
      EXPECT_TRUE(mmt::contains(msg, ep.function)) << "message does not name the function: " << msg;
      bool named = false;
      for (const auto& name : cs.names) named = named || mmt::contains(msg, name);
      EXPECT_TRUE(named) << "message names none of " << ::testing::PrintToString(cs.names) << ": " << msg;
    }
    if (cs.want != MEGAMOE_SUCCESS) {
      for (std::size_t i = 0; i < c.args.size(); ++i) {
        EXPECT_TRUE(c.args[i]->storage == before[i]) << "'" << c.args[i]->name << "' was written by a failed call";
      }
      if (ep.creates_layer) {
        EXPECT_EQ(g_out_layer, kSentinelLayer) << "out_layer written by a failed call";
      }
      EXPECT_EQ(megamoe_live_object_count(), live) << "a failed call left objects behind";
    }
    if (ep.creates_layer && st == MEGAMOE_SUCCESS && g_out_layer != kSentinelLayer) {
      megamoe_moe_layer_destroy(g_out_layer);
    }
    const int parts_after = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
    if (parts_after > parts_before && ++failures > 40) {
      ADD_FAILURE() << "too many failures, stopping " << ep.function;
      return;
    }
  }
}

// Fills an FP32 scale tensor with 1s and an FP8 tensor with small valid codes.
void fill_f32(Call& c, const std::string& n, float v) {
  const int64_t count = mmt::numel(std::vector<int64_t>(c.arg(n).desc.shape, c.arg(n).desc.shape + c.arg(n).desc.rank));
  for (int64_t i = 0; i < count; ++i) c.data<float>(n)[i] = v;
}
void fill_fp8(Call& c, const std::string& n) {
  TensorArg& a = c.arg(n);
  const int64_t count = mmt::numel(std::vector<int64_t>(a.desc.shape, a.desc.shape + a.desc.rank));
  for (int64_t i = 0; i < count; ++i) a.storage[static_cast<std::size_t>(i)] = static_cast<uint8_t>(0x30 + (i % 7));
}

// ------------------------------------------------------------------------------------------------
// Things that must be accepted: any stride on a dimension of extent 1, data 16-byte (not 64-byte)
// aligned.
// ------------------------------------------------------------------------------------------------
TEST(Validation, StridesOfExtentOneDimensionsAndSixteenByteAlignmentAreAccepted) {
  mmt::ScopedContext ctx;
  HostVec<float> x(256 + 16);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 13) - 6.0f;
  HostVec<uint8_t> q(256 + 64, 0);
  HostVec<float> s(2 + 16, 0.0f);
  // x starts 16 bytes into its buffer; q 16 bytes; the scales 48 bytes.
  auto xt = mmt::make_tensor(x.data() + 4, MEGAMOE_DTYPE_FP32, {1, 256});
  auto qt = mmt::make_tensor(q.data() + 16, MEGAMOE_DTYPE_FP8_E4M3, {1, 256});
  auto st = mmt::make_tensor(s.data() + 12, MEGAMOE_DTYPE_FP32, {1, 2});
  xt.strides[0] = 7777;
  qt.strides[0] = 0;
  st.strides[0] = -5;
  ASSERT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, 0, nullptr), MEGAMOE_SUCCESS) << last_error();
  HostVec<uint8_t> want_q(256);
  HostVec<float> want_s(2);
  mmt::ref_quantize_activations(x.data() + 4, 1, 256, false, want_q.data(), want_s.data());
  EXPECT_TRUE(mmt::bytes_equal(q.data() + 16, want_q.data(), 256));
  EXPECT_TRUE(mmt::float_bits_equal(s.data() + 12, want_s.data(), 2));

  // A [1, 1, K] scale tensor and a middle extent-1 dimension in a weight tensor.
  HostVec<uint16_t> w(128 * 128, 0x3F80);
  HostVec<uint8_t> wq(128 * 128);
  HostVec<float> ws(1);
  auto wt = mmt::make_tensor(w.data(), MEGAMOE_DTYPE_BF16, {1, 128, 128});
  auto wqt = mmt::make_tensor(wq.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 128, 128});
  auto wst = mmt::make_tensor(ws.data(), MEGAMOE_DTYPE_FP32, {1, 1, 1});
  wt.strides[0] = 3;
  wst.strides[0] = 1000;
  wst.strides[1] = 0;
  wst.strides[2] = 42;
  ASSERT_EQ(megamoe_quantize_weights(ctx, &wt, &wqt, &wst, 0, nullptr), MEGAMOE_SUCCESS) << last_error();
  EXPECT_EQ(ws[0], 1.0f / 448.0f);
  EXPECT_EQ(wq[0], 0x7E);
}

// A tensor on the right device type with the wrong device id: the message names device_id, the value
// given and the one expected (it used to say "tensor is on the CPU but the context runs on the CPU").
TEST(Validation, AWrongDeviceIdIsNamedWithTheExpectedValue) {
  mmt::ScopedContext ctx;
  HostVec<float> x(128, 1.0f), s(1);
  HostVec<uint8_t> q(128);
  auto xt = mmt::make_tensor(x.data(), MEGAMOE_DTYPE_FP32, {1, 128});
  const auto qt = mmt::make_tensor(q.data(), MEGAMOE_DTYPE_FP8_E4M3, {1, 128});
  const auto st = mmt::make_tensor(s.data(), MEGAMOE_DTYPE_FP32, {1, 1});
  for (int32_t id : {99, -1, 1, std::numeric_limits<int32_t>::min()}) {
    xt.device_id = id;
    EXPECT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, 0, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
    EXPECT_TRUE(mmt::contains(last_error(), "argument 'x': device_id is " + std::to_string(id) +
                                                "; expected 0 (the context runs on the CPU)"))
        << last_error();
  }
  xt.device_id = 0;
  xt.device_type = MEGAMOE_DEVICE_CUDA;
  EXPECT_EQ(megamoe_quantize_activations(ctx, &xt, &qt, &st, 0, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(mmt::contains(last_error(), "argument 'x': tensor is on CUDA device 0 (device_type 2) but the context "
                                          "runs on the CPU; expected device_type 1 (CPU) and device_id 0"))
      << last_error();
}

// ------------------------------------------------------------------------------------------------
// 1. Quantization
// ------------------------------------------------------------------------------------------------
TEST(Validation, QuantizeActivations) {
  EntryPoint ep;
  ep.function = "quantize_activations";
  ep.build = [](Call& c) {
    c.add("x", MEGAMOE_DTYPE_FP32, {3, 256}, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32});
    fill_f32(c, "x", 1.5f);
    c.add("q", MEGAMOE_DTYPE_FP8_E4M3, {3, 256}, {MEGAMOE_DTYPE_FP8_E4M3}, true);
    c.add("scales", MEGAMOE_DTYPE_FP32, {3, 2}, {MEGAMOE_DTYPE_FP32}, true);
  };
  ep.invoke = [](Call& c) { return megamoe_quantize_activations(c.ctx, c.t("x"), c.t("q"), c.t("scales"), c.flags, nullptr); };
  run_entry_point(ep, {
                          {"NULL context", [](Call& c) { c.ctx = nullptr; }, {q("context")}},
                          {"q has more columns", [](Call& c) { c.reshape("q", {3, 384}); }, {q("q")}},
                          {"q has more rows", [](Call& c) { c.reshape("q", {4, 256}); }, {q("q")}},
                          {"scales has 3 groups for K=256", [](Call& c) { c.reshape("scales", {3, 3}); }, {q("scales")}},
                          {"scales has 1 group for K=256", [](Call& c) { c.reshape("scales", {3, 1}); }, {q("scales")}},
                          {"scales has fewer rows", [](Call& c) { c.reshape("scales", {2, 2}); }, {q("scales")}},
                          {"unknown flag 2", [](Call& c) { c.flags = 2; }, {q("flags")}},
                          {"unknown flag 0x80000000", [](Call& c) { c.flags = 0x80000000u; }, {q("flags")}},
                      });
}

TEST(Validation, QuantizeActivationsChecked) {
  EntryPoint ep;
  ep.function = "quantize_activations_checked";
  ep.build = [](Call& c) {
    c.add("x", MEGAMOE_DTYPE_BF16, {3, 256}, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32});
    c.add("q", MEGAMOE_DTYPE_FP8_E4M3, {3, 256}, {MEGAMOE_DTYPE_FP8_E4M3}, true);
    c.add("scales", MEGAMOE_DTYPE_FP32, {3, 2}, {MEGAMOE_DTYPE_FP32}, true);
    c.add("nonfinite_rows", MEGAMOE_DTYPE_INT32, {1}, {MEGAMOE_DTYPE_INT32}, true, true);
  };
  ep.invoke = [](Call& c) {
    return megamoe_quantize_activations_checked(c.ctx, c.t("x"), c.t("q"), c.t("scales"), c.flags,
                                                c.t("nonfinite_rows"), nullptr);
  };
  const auto alias = [](const char* other) {
    return [other](Call& c) { c.arg("nonfinite_rows").desc.data = c.arg(other).desc.data; };
  };
  run_entry_point(ep, {
                          {"NULL context", [](Call& c) { c.ctx = nullptr; }, {q("context")}},
                          {"nonfinite_rows has 2 elements", [](Call& c) { c.reshape("nonfinite_rows", {2}); },
                           {q("nonfinite_rows")}},
                          {"nonfinite_rows is empty", [](Call& c) { c.reshape("nonfinite_rows", {0}); },
                           {q("nonfinite_rows")}},
                          {"nonfinite_rows aliases q", alias("q"), {q("nonfinite_rows"), q("q")}},
                          {"nonfinite_rows aliases scales", alias("scales"), {q("nonfinite_rows"), q("scales")}},
                          {"unknown flag 2", [](Call& c) { c.flags = 2; }, {q("flags")}},
                      });
}

TEST(Validation, DequantizeActivations) {
  EntryPoint ep;
  ep.function = "dequantize_activations";
  ep.build = [](Call& c) {
    c.add("q", MEGAMOE_DTYPE_FP8_E4M3, {3, 200}, {MEGAMOE_DTYPE_FP8_E4M3});
    fill_fp8(c, "q");
    c.add("scales", MEGAMOE_DTYPE_FP32, {3, 2}, {MEGAMOE_DTYPE_FP32});
    fill_f32(c, "scales", 0.5f);
    c.add("out", MEGAMOE_DTYPE_BF16, {3, 200}, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}, true);
  };
  ep.invoke = [](Call& c) { return megamoe_dequantize_activations(c.ctx, c.t("q"), c.t("scales"), c.t("out"), nullptr); };
  run_entry_point(ep, {
                          {"NULL context", [](Call& c) { c.ctx = nullptr; }, {q("context")}},
                          {"out has more columns", [](Call& c) { c.reshape("out", {3, 256}); }, {q("out")}},
                          {"out has fewer rows", [](Call& c) { c.reshape("out", {2, 200}); }, {q("out")}},
                          {"scales has 3 groups for K=200", [](Call& c) { c.reshape("scales", {3, 3}); }, {q("scales")}},
                          {"scales has more rows", [](Call& c) { c.reshape("scales", {4, 2}); }, {q("scales")}},
                      });
}

TEST(Validation, QuantizeWeights) {
  EntryPoint ep;
  ep.function = "quantize_weights";
  ep.build = [](Call& c) {
    c.add("w", MEGAMOE_DTYPE_BF16, {2, 256, 384}, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}).ok_ranks = {2, 3};
    c.add("q", MEGAMOE_DTYPE_FP8_E4M3, {2, 256, 384}, {MEGAMOE_DTYPE_FP8_E4M3}, true);
    c.add("scales", MEGAMOE_DTYPE_FP32, {2, 2, 3}, {MEGAMOE_DTYPE_FP32}, true);
  };
  ep.invoke = [](Call& c) { return megamoe_quantize_weights(c.ctx, c.t("w"), c.t("q"), c.t("scales"), c.flags, nullptr); };
  run_entry_point(ep, {
                          {"NULL context", [](Call& c) { c.ctx = nullptr; }, {q("context")}},
                          {"q rank 2 for rank-3 w", [](Call& c) { c.reshape("q", {512, 384}); }, {q("q")}},
                          {"q has another E", [](Call& c) { c.reshape("q", {3, 256, 384}); }, {q("q")}},
                          {"q has another K", [](Call& c) { c.reshape("q", {2, 256, 256}); }, {q("q")}},
                          {"scales ceil(K/128) wrong", [](Call& c) { c.reshape("scales", {2, 2, 2}); }, {q("scales")}},
                          {"scales ceil(N/128) wrong", [](Call& c) { c.reshape("scales", {2, 3, 3}); }, {q("scales")}},
                          {"scales rank 2 for rank-3 w", [](Call& c) { c.reshape("scales", {4, 3}); }, {q("scales")}},
                          {"unknown flag 4", [](Call& c) { c.flags = 4; }, {q("flags")}},
                      });
}

TEST(Validation, DequantizeWeights) {
  EntryPoint ep;
  ep.function = "dequantize_weights";
  ep.build = [](Call& c) {
    c.add("q", MEGAMOE_DTYPE_FP8_E4M3, {200, 130}, {MEGAMOE_DTYPE_FP8_E4M3}).ok_ranks = {2, 3};
    fill_fp8(c, "q");
    c.add("scales", MEGAMOE_DTYPE_FP32, {2, 2}, {MEGAMOE_DTYPE_FP32});
    fill_f32(c, "scales", 2.0f);
    // [N, K] and [E, N, K] are both valid for out; a rank that differs from q's is a relation
    // between the two, which the message may attribute to either.
    c.add("out", MEGAMOE_DTYPE_FP32, {200, 130}, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32}, true).ok_ranks = {2, 3};
  };
  ep.invoke = [](Call& c) { return megamoe_dequantize_weights(c.ctx, c.t("q"), c.t("scales"), c.t("out"), nullptr); };
  run_entry_point(ep, {
                          {"NULL context", [](Call& c) { c.ctx = nullptr; }, {q("context")}},
                          {"out has another N", [](Call& c) { c.reshape("out", {256, 130}); }, {q("out")}},
                          {"out rank 3", [](Call& c) { c.reshape("out", {1, 200, 130}); }, {q("out"), q("q")}},
                          {"out rank 4", [](Call& c) { c.reshape("out", {1, 1, 200, 130}); }, {q("out")}},
                          {"scales wrong blocks", [](Call& c) { c.reshape("scales", {2, 1}); }, {q("scales")}},
                          {"scales wrong row blocks", [](Call& c) { c.reshape("scales", {1, 2}); }, {q("scales")}},
                      });
}

// ------------------------------------------------------------------------------------------------
// 2. GEMMs
// ------------------------------------------------------------------------------------------------
// a [M, K], a_scales, b [N, K] or [E, N, K], b_scales: valid contents.
void add_gemm_operands(Call& c, std::vector<int64_t> a_shape, std::vector<int64_t> b_shape) {
  std::vector<int64_t> sa_shape = a_shape;
  sa_shape.back() /= 128;
  std::vector<int64_t> sb_shape = b_shape;
  sb_shape.back() /= 128;
  sb_shape[sb_shape.size() - 2] /= 128;
  c.add("a", MEGAMOE_DTYPE_FP8_E4M3, a_shape, {MEGAMOE_DTYPE_FP8_E4M3});
  fill_fp8(c, "a");
  c.add("a_scales", MEGAMOE_DTYPE_FP32, sa_shape, {MEGAMOE_DTYPE_FP32});
  fill_f32(c, "a_scales", 0.25f);
  c.add("b", MEGAMOE_DTYPE_FP8_E4M3, b_shape, {MEGAMOE_DTYPE_FP8_E4M3});
  fill_fp8(c, "b");
  c.add("b_scales", MEGAMOE_DTYPE_FP32, sb_shape, {MEGAMOE_DTYPE_FP32});
  fill_f32(c, "b_scales", 0.5f);
}

TEST(Validation, GemmDense) {
  EntryPoint ep;
  ep.function = "gemm_dense";
  ep.build = [](Call& c) {
    add_gemm_operands(c, {3, 256}, {256, 256});
    c.add("d", MEGAMOE_DTYPE_BF16, {3, 256}, {MEGAMOE_DTYPE_BF16}, true);
  };
  ep.invoke = [](Call& c) {
    return megamoe_gemm_dense(c.ctx, c.t("a"), c.t("a_scales"), c.t("b"), c.t("b_scales"), c.t("d"), nullptr);
  };
  run_entry_point(
      ep, {
              {"NULL context", [](Call& c) { c.ctx = nullptr; }, {q("context")}},
              {"a_scales K/128 wrong", [](Call& c) { c.reshape("a_scales", {3, 3}); }, {q("a_scales")}},
              {"a_scales rows wrong", [](Call& c) { c.reshape("a_scales", {4, 2}); }, {q("a_scales")}},
              {"b K differs from a", [](Call& c) {
                 c.reshape("b", {256, 384});
                 c.reshape("b_scales", {2, 3});
               },
               {q("b")}},
              {"b_scales N/128 wrong", [](Call& c) { c.reshape("b_scales", {1, 2}); }, {q("b_scales")}},
              {"b_scales K/128 wrong", [](Call& c) { c.reshape("b_scales", {2, 3}); }, {q("b_scales")}},
              {"b rank 3", [](Call& c) {
                 c.reshape("b", {1, 256, 256});
                 c.reshape("b_scales", {1, 2, 2});
               },
               {q("b"), q("b_scales")}},
              {"d N wrong", [](Call& c) { c.reshape("d", {3, 384}); }, {q("d")}},
              {"d M wrong", [](Call& c) { c.reshape("d", {4, 256}); }, {q("d")}},
              {"K not a multiple of 128", [](Call& c) {
                 c.reshape("a", {3, 200});
                 c.reshape("a_scales", {3, 2});
                 c.reshape("b", {256, 200});
                 c.reshape("b_scales", {2, 2});
               },
               {q("a"), q("b"), q("a_scales")}},
              {"N not a multiple of 128", [](Call& c) {
                 c.reshape("b", {200, 256});
                 c.reshape("b_scales", {2, 2});
                 c.reshape("d", {3, 200});
               },
               {q("b"), q("d"), q("b_scales")}},
          });
}

// Contiguous: M = 256, E = 3; block 0: expert 1 on rows 0..99 then padding, block 1: expert 2.
void build_contiguous(Call& c) {
  add_gemm_operands(c, {256, 256}, {3, 256, 256});
  c.add("m_indices", MEGAMOE_DTYPE_INT32, {256}, {MEGAMOE_DTYPE_INT32});
  int32_t* idx = c.data<int32_t>("m_indices");
  for (int i = 0; i < 256; ++i) idx[i] = i < 100 ? 1 : i < 128 ? -1 : 2;
  c.add("d", MEGAMOE_DTYPE_BF16, {256, 256}, {MEGAMOE_DTYPE_BF16}, true);
}

TEST(Validation, GemmGroupedContiguous) {
  EntryPoint ep;
  ep.function = "gemm_grouped_contiguous";
  ep.build = build_contiguous;
  ep.invoke = [](Call& c) {
    return megamoe_gemm_grouped_contiguous(c.ctx, c.t("a"), c.t("a_scales"), c.t("b"), c.t("b_scales"),
                                           c.t("m_indices"), c.t("d"), nullptr);
  };
  run_entry_point(
      ep, {
              {"NULL context", [](Call& c) { c.ctx = nullptr; }, {q("context")}},
              {"m_indices shorter than M", [](Call& c) { c.reshape("m_indices", {255}); }, {q("m_indices")}},
              {"m_indices = E", [](Call& c) { c.data<int32_t>("m_indices")[200] = 3; }, {q("m_indices")}},
              {"m_indices = -2", [](Call& c) { c.data<int32_t>("m_indices")[7] = -2; }, {q("m_indices")}},
              {"m_indices = INT32_MIN", [](Call& c) { c.data<int32_t>("m_indices")[255] = INT32_MIN; }, {q("m_indices")}},
              {"two experts in one 128-row block", [](Call& c) { c.data<int32_t>("m_indices")[50] = 0; }, {q("m_indices")}},
              {"two experts in the second block", [](Call& c) { c.data<int32_t>("m_indices")[255] = 1; }, {q("m_indices")}},
              {"a_scales rows wrong", [](Call& c) { c.reshape("a_scales", {255, 2}); }, {q("a_scales")}},
              {"b K differs", [](Call& c) {
                 c.reshape("b", {3, 256, 384});
                 c.reshape("b_scales", {3, 2, 3});
               },
               {q("b")}},
              {"b rank 2", [](Call& c) {
                 c.reshape("b", {256, 256});
                 c.reshape("b_scales", {2, 2});
               },
               {q("b"), q("b_scales")}},
              {"b_scales E wrong", [](Call& c) { c.reshape("b_scales", {2, 2, 2}); }, {q("b_scales")}},
              {"b_scales K/128 wrong", [](Call& c) { c.reshape("b_scales", {3, 2, 3}); }, {q("b_scales")}},
              {"d N wrong", [](Call& c) { c.reshape("d", {256, 384}); }, {q("d")}},
              {"d M wrong", [](Call& c) { c.reshape("d", {128, 256}); }, {q("d")}},
              {"N not a multiple of 128", [](Call& c) {
                 c.reshape("b", {3, 200, 256});
                 c.reshape("b_scales", {3, 2, 2});
                 c.reshape("d", {256, 200});
               },
               {q("b"), q("d"), q("b_scales")}},
              {"K not a multiple of 128", [](Call& c) {
                 c.reshape("a", {256, 200});
                 c.reshape("a_scales", {256, 2});
                 c.reshape("b", {3, 256, 200});
                 c.reshape("b_scales", {3, 2, 2});
               },
               {q("a"), q("b"), q("a_scales")}},
          });
}

template <typename Index>
void build_offsets(Call& c, megamoe_dtype_t dtype) {
  add_gemm_operands(c, {100, 128}, {4, 128, 128});
  c.add("offsets", dtype, {5}, {MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64});
  Index* o = c.data<Index>("offsets");
  const Index v[5] = {3, 3, 40, 41, 90};
  for (int i = 0; i < 5; ++i) o[i] = v[i];
  c.add("d", MEGAMOE_DTYPE_BF16, {100, 128}, {MEGAMOE_DTYPE_BF16}, true);
}

template <typename Index>
void run_offsets_validation(megamoe_dtype_t dtype) {
  EntryPoint ep;
  ep.function = "gemm_grouped_offsets";
  ep.build = [dtype](Call& c) { build_offsets<Index>(c, dtype); };
  ep.invoke = [](Call& c) {
    return megamoe_gemm_grouped_offsets(c.ctx, c.t("a"), c.t("a_scales"), c.t("b"), c.t("b_scales"), c.t("offsets"),
                                        c.t("d"), nullptr);
  };
  auto set = [](Call& c, int i, int64_t v) { c.data<Index>("offsets")[i] = static_cast<Index>(v); };
  run_entry_point(
      ep, {
              {"NULL context", [](Call& c) { c.ctx = nullptr; }, {q("context")}},
              {"offsets has E entries", [](Call& c) { c.reshape("offsets", {4}); }, {q("offsets")}},
              {"offsets has E + 2 entries", [](Call& c) { c.reshape("offsets", {6}); }, {q("offsets")}},
              {"offsets decreasing", [set](Call& c) { set(c, 2, 2); }, {q("offsets")}},
              {"offsets decreasing at the end", [set](Call& c) { set(c, 4, 40); }, {q("offsets")}},
              {"offsets[0] negative", [set](Call& c) { set(c, 0, -1); }, {q("offsets")}},
              {"offsets[E] > M", [set](Call& c) { set(c, 4, 101); }, {q("offsets")}},
              {"offsets far beyond M", [set](Call& c) {
                 set(c, 3, 1000);
                 set(c, 4, 1000);
               },
               {q("offsets")}},
              {"b E differs from offsets", [](Call& c) {
                 c.reshape("b", {5, 128, 128});
                 c.reshape("b_scales", {5, 1, 1});
               },
               {q("b"), q("offsets")}},
              {"d rows wrong", [](Call& c) { c.reshape("d", {99, 128}); }, {q("d")}},
              {"a_scales rows wrong", [](Call& c) { c.reshape("a_scales", {101, 1}); }, {q("a_scales")}},
          });
}

TEST(Validation, GemmGroupedOffsetsInt32) { run_offsets_validation<int32_t>(MEGAMOE_DTYPE_INT32); }
TEST(Validation, GemmGroupedOffsetsInt64) { run_offsets_validation<int64_t>(MEGAMOE_DTYPE_INT64); }

TEST(Validation, GemmGroupedMasked) {
  EntryPoint ep;
  ep.function = "gemm_grouped_masked";
  ep.build = [](Call& c) {
    add_gemm_operands(c, {3, 64, 256}, {3, 256, 256});
    c.add("masked_m", MEGAMOE_DTYPE_INT32, {3}, {MEGAMOE_DTYPE_INT32});
    int32_t* m = c.data<int32_t>("masked_m");
    m[0] = 0;
    m[1] = 64;
    m[2] = 17;
    c.add("d", MEGAMOE_DTYPE_BF16, {3, 64, 256}, {MEGAMOE_DTYPE_BF16}, true);
    c.expected_m = 20;
  };
  ep.invoke = [](Call& c) {
    return megamoe_gemm_grouped_masked(c.ctx, c.t("a"), c.t("a_scales"), c.t("b"), c.t("b_scales"), c.t("masked_m"),
                                       c.expected_m, c.t("d"), nullptr);
  };
  run_entry_point(
      ep, {
              {"NULL context", [](Call& c) { c.ctx = nullptr; }, {q("context")}},
              {"masked_m > max_m", [](Call& c) { c.data<int32_t>("masked_m")[2] = 65; }, {q("masked_m")}},
              {"masked_m negative", [](Call& c) { c.data<int32_t>("masked_m")[0] = -1; }, {q("masked_m")}},
              {"masked_m has E - 1 entries", [](Call& c) { c.reshape("masked_m", {2}); }, {q("masked_m")}},
              {"negative expected_m", [](Call& c) { c.expected_m = -1; }, {q("expected_m")}},
              {"a_scales max_m wrong", [](Call& c) { c.reshape("a_scales", {3, 63, 2}); }, {q("a_scales")}},
              {"b E differs from a", [](Call& c) {
                 c.reshape("b", {2, 256, 256});
                 c.reshape("b_scales", {2, 2, 2});
               },
               {q("b")}},
              {"b K differs", [](Call& c) {
                 c.reshape("b", {3, 256, 384});
                 c.reshape("b_scales", {3, 2, 3});
               },
               {q("b")}},
              {"b_scales wrong", [](Call& c) { c.reshape("b_scales", {3, 1, 2}); }, {q("b_scales")}},
              {"d N wrong", [](Call& c) { c.reshape("d", {3, 64, 384}); }, {q("d")}},
              {"d E wrong", [](Call& c) { c.reshape("d", {2, 64, 256}); }, {q("d")}},
              {"d max_m wrong", [](Call& c) { c.reshape("d", {3, 65, 256}); }, {q("d")}},
              {"a rank 2", [](Call& c) {
                 c.reshape("a", {192, 256});
                 c.reshape("a_scales", {192, 2});
               },
               {q("a"), q("a_scales")}},
          });
}

// Plan creation: scalar arguments.
TEST(Validation, RoutedPlanCreate) {
  mmt::ScopedContext ctx;
  struct PlanCase {
    const char* label;
    int64_t max_tokens;
    int32_t top_k, experts;
    int64_t n, k;
    uint32_t flags;
    const char* name;
  };
  const std::vector<PlanCase> cases = {
      {"max_tokens 0", 0, 2, 4, 128, 128, 0, "'max_tokens'"},
      {"max_tokens negative", -3, 2, 4, 128, 128, 0, "'max_tokens'"},
      {"top_k 0", 8, 0, 4, 128, 128, 0, "'top_k'"},
      {"top_k 17", 8, 17, 4, 128, 128, 0, "'top_k'"},
      {"top_k negative", 8, -1, 4, 128, 128, 0, "'top_k'"},
      {"num_experts 0", 8, 2, 0, 128, 128, 0, "'num_experts'"},
      {"num_experts 1025", 8, 2, 1025, 128, 128, 0, "'num_experts'"},
      {"n not a multiple of 128", 8, 2, 4, 200, 128, 0, "'n'"},
      {"n 0", 8, 2, 4, 0, 128, 0, "'n'"},
      {"k not a multiple of 128", 8, 2, 4, 128, 100, 0, "'k'"},
      {"k negative", 8, 2, 4, 128, -128, 0, "'k'"},
      {"unknown flag", 8, 2, 4, 128, 128, 4, "'flags'"},
  };
  const auto sentinel = reinterpret_cast<megamoe_routed_plan_t>(uintptr_t{0x5A5A5A90});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    const int64_t live = megamoe_live_object_count();
    megamoe_routed_plan_t plan = sentinel;
    EXPECT_EQ(megamoe_routed_plan_create(ctx, c.max_tokens, c.top_k, c.experts, c.n, c.k, c.flags, &plan),
              MEGAMOE_ERROR_INVALID_ARGUMENT);
    EXPECT_TRUE(mmt::contains(last_error(), "routed_plan_create")) << last_error();
    EXPECT_TRUE(mmt::contains(last_error(), c.name)) << last_error();
    EXPECT_EQ(plan, sentinel);
    EXPECT_EQ(megamoe_live_object_count(), live);
  }
  megamoe_routed_plan_t plan = sentinel;
  EXPECT_EQ(megamoe_routed_plan_create(nullptr, 8, 2, 4, 128, 128, 0, &plan), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(mmt::contains(last_error(), "'context'")) << last_error();
  EXPECT_EQ(megamoe_routed_plan_create(ctx, 8, 2, 4, 128, 128, 0, nullptr), MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(mmt::contains(last_error(), "'out_plan'")) << last_error();
  EXPECT_EQ(plan, sentinel);
  // The extremes of the valid ranges are accepted.
  for (const auto& v : {std::vector<int64_t>{1, 16, 1024}, std::vector<int64_t>{1, 1, 1}}) {
    megamoe_routed_plan_t ok = nullptr;
    EXPECT_EQ(megamoe_routed_plan_create(ctx, v[0], static_cast<int32_t>(v[1]), static_cast<int32_t>(v[2]), 128, 128,
                                         MEGAMOE_PLAN_EXPERT_SPECIALIZATION, &ok),
              MEGAMOE_SUCCESS)
        << last_error();
    EXPECT_EQ(megamoe_routed_plan_destroy(ok), MEGAMOE_SUCCESS);
  }
}

// Routed: plan (max_tokens 8, top_k 2, E 3, n 256, k 256); T = 5.
// num_tokens = 4: token 4 is not read, so out-of-range values there must not matter (checked by
// the "ignored beyond num_tokens" case).
void build_routed(Call& c) {
  megamoe_routed_plan_t plan = nullptr;
  EXPECT_EQ(megamoe_routed_plan_create(c.ctx, 8, 2, 3, 256, 256, 0, &plan), MEGAMOE_SUCCESS) << last_error();
  c.plan = c.owned_plan = plan;
  add_gemm_operands(c, {5, 256}, {3, 256, 256});
  c.add("topk_idx", MEGAMOE_DTYPE_INT32, {5, 2}, {MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64});
  const int32_t idx[10] = {0, 1, 2, -1, -1, -1, 1, 1, 2, 0};
  for (int i = 0; i < 10; ++i) c.data<int32_t>("topk_idx")[i] = idx[i];
  c.add("topk_weights", MEGAMOE_DTYPE_FP32, {5, 2}, {MEGAMOE_DTYPE_FP32}, false, true);
  fill_f32(c, "topk_weights", 0.5f);
  c.add("num_tokens", MEGAMOE_DTYPE_INT32, {1}, {MEGAMOE_DTYPE_INT32}, false, true);
  c.data<int32_t>("num_tokens")[0] = 4;
  c.add("d", MEGAMOE_DTYPE_BF16, {5, 2, 256}, {MEGAMOE_DTYPE_BF16}, true);
}

TEST(Validation, GemmRouted) {
  EntryPoint ep;
  ep.function = "gemm_routed";
  ep.build = build_routed;
  ep.invoke = [](Call& c) {
    return megamoe_gemm_routed(c.plan, c.t("a"), c.t("a_scales"), c.t("b"), c.t("b_scales"), c.t("topk_idx"),
                               c.t("topk_weights"), c.t("num_tokens"), c.t("d"), nullptr);
  };
  auto resize_tokens = [](Call& c, int64_t T) {
    c.reshape("a", {T, 256});
    c.reshape("a_scales", {T, 2});
    c.reshape("topk_idx", {T, 2});
    c.reshape("topk_weights", {T, 2});
    c.reshape("d", {T, 2, 256});
  };
  run_entry_point(
      ep, {
              {"NULL plan", [](Call& c) { c.plan = nullptr; }, {q("plan")}},
              {"T > max_tokens", [resize_tokens](Call& c) { resize_tokens(c, 9); }, {q("a"), "max_tokens"}},
              {"topk_idx top_k differs from the plan", [](Call& c) { c.reshape("topk_idx", {5, 3}); }, {q("topk_idx")}},
              {"topk_idx T differs", [](Call& c) { c.reshape("topk_idx", {4, 2}); }, {q("topk_idx")}},
              {"topk_idx = E", [](Call& c) { c.data<int32_t>("topk_idx")[3] = 3; }, {q("topk_idx")}},
              {"topk_idx = -2", [](Call& c) { c.data<int32_t>("topk_idx")[0] = -2; }, {q("topk_idx")}},
              {"topk_idx = E as int64", [](Call& c) {
                 c.set_dtype("topk_idx", MEGAMOE_DTYPE_INT64);
                 const int64_t idx[10] = {0, 1, 2, -1, -1, -1, 1, 3, 2, 0};  // token 3 < num_tokens
                 for (int i = 0; i < 10; ++i) c.data<int64_t>("topk_idx")[i] = idx[i];
               },
               {q("topk_idx")}},
              {"topk_idx huge int64", [](Call& c) {
                 c.set_dtype("topk_idx", MEGAMOE_DTYPE_INT64);
                 const int64_t idx[10] = {0, 1, 2, -1, int64_t{1} << 33, -1, 1, 1, 2, 0};
                 for (int i = 0; i < 10; ++i) c.data<int64_t>("topk_idx")[i] = idx[i];
               },
               {q("topk_idx")}},
              {"out-of-range topk_idx beyond num_tokens is not read", [](Call& c) { c.data<int32_t>("topk_idx")[9] = 77; },
               {}, MEGAMOE_SUCCESS},
              {"topk_weights top_k wrong", [](Call& c) { c.reshape("topk_weights", {5, 3}); }, {q("topk_weights")}},
              {"topk_weights T wrong", [](Call& c) { c.reshape("topk_weights", {6, 2}); }, {q("topk_weights")}},
              {"num_tokens has 2 entries", [](Call& c) { c.reshape("num_tokens", {2}); }, {q("num_tokens")}},
              {"num_tokens > T", [](Call& c) { c.data<int32_t>("num_tokens")[0] = 6; }, {q("num_tokens")}},
              {"num_tokens negative", [](Call& c) { c.data<int32_t>("num_tokens")[0] = -1; }, {q("num_tokens")}},
              {"b E differs from the plan", [](Call& c) {
                 c.reshape("b", {4, 256, 256});
                 c.reshape("b_scales", {4, 2, 2});
               },
               {q("b")}},
              {"b N differs from the plan", [](Call& c) {
                 c.reshape("b", {3, 384, 256});
                 c.reshape("b_scales", {3, 3, 2});
                 c.reshape("d", {5, 2, 384});
               },
               {q("b")}},
              {"K differs from the plan", [](Call& c) {
                 c.reshape("a", {5, 384});
                 c.reshape("a_scales", {5, 3});
                 c.reshape("b", {3, 256, 384});
                 c.reshape("b_scales", {3, 2, 3});
               },
               {q("a"), q("b")}},
              {"a_scales wrong", [](Call& c) { c.reshape("a_scales", {5, 3}); }, {q("a_scales")}},
              {"b_scales wrong", [](Call& c) { c.reshape("b_scales", {3, 2, 1}); }, {q("b_scales")}},
              {"d N wrong", [](Call& c) { c.reshape("d", {5, 2, 384}); }, {q("d")}},
              {"d top_k wrong", [](Call& c) { c.reshape("d", {5, 3, 256}); }, {q("d")}},
              {"d rank 2", [](Call& c) { c.reshape("d", {10, 256}); }, {q("d")}},
          });
}

// ------------------------------------------------------------------------------------------------
// 3. Interleave
// ------------------------------------------------------------------------------------------------
TEST(Validation, InterleaveGateUp) {
  EntryPoint ep;
  ep.function = "interleave_gate_up";
  ep.build = [](Call& c) {
    c.add("w", MEGAMOE_DTYPE_BF16, {2, 32, 128}, kAllDtypes).ok_ranks = {2, 3};
    c.add("out", MEGAMOE_DTYPE_BF16, {2, 32, 128}, kAllDtypes, true).ok_ranks = {2, 3};
  };
  ep.invoke = [](Call& c) { return megamoe_interleave_gate_up(c.ctx, c.t("w"), c.t("out"), c.inverse, nullptr); };
  run_entry_point(
      ep, {
              {"NULL context", [](Call& c) { c.ctx = nullptr; }, {q("context")}},
              {"out shape differs", [](Call& c) { c.reshape("out", {2, 32, 64}); }, {q("out")}},
              {"out dtype differs", [](Call& c) { c.set_dtype("out", MEGAMOE_DTYPE_FP32); }, {q("out")}},
              {"out rank differs", [](Call& c) { c.reshape("out", {64, 128}); }, {q("out")}},
              {"I not a multiple of 8", [](Call& c) {
                 c.reshape("w", {2, 20, 128});
                 c.reshape("out", {2, 20, 128});
               },
               {q("w")}},
              {"odd number of rows", [](Call& c) {
                 c.reshape("w", {2, 33, 128});
                 c.reshape("out", {2, 33, 128});
               },
               {q("w")}},
              {"out is w", [](Call& c) { c.arg("out").desc.data = c.arg("w").desc.data; }, {q("out")}},
              {"out overlaps the end of w", [](Call& c) {
                 c.arg("out").desc.data = static_cast<uint8_t*>(c.arg("w").desc.data) + 2 * 32 * 128 * 2 - 64;
               },
               {q("out")}},
              {"w overlaps the end of out", [](Call& c) {
                 c.arg("w").desc.data = static_cast<uint8_t*>(c.arg("out").desc.data) + 1024;
               },
               {q("out"), q("w")}},
          });
}

// ------------------------------------------------------------------------------------------------
// 4. MoE layer creation: tensors and config fields
// ------------------------------------------------------------------------------------------------
// E = 4, H = 128, I = 128, top_k = 2, max_tokens = 8; FP8 weights with scales.
void build_layer_create(Call& c) {
  c.add("w13", MEGAMOE_DTYPE_FP8_E4M3, {4, 256, 128}, {MEGAMOE_DTYPE_FP8_E4M3, MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32});
  fill_fp8(c, "w13");
  c.add("w13_scales", MEGAMOE_DTYPE_FP32, {4, 2, 1}, {MEGAMOE_DTYPE_FP32});
  fill_f32(c, "w13_scales", 0.01f);
  c.add("w2", MEGAMOE_DTYPE_FP8_E4M3, {4, 128, 128}, {MEGAMOE_DTYPE_FP8_E4M3, MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32});
  fill_fp8(c, "w2");
  c.add("w2_scales", MEGAMOE_DTYPE_FP32, {4, 1, 1}, {MEGAMOE_DTYPE_FP32});
  fill_f32(c, "w2_scales", 0.01f);
  c.config = mmt::moe_config(4, 2, 128, 128, 8);
}

TEST(Validation, MoeLayerCreate) {
  EntryPoint ep;
  ep.function = "moe_layer_create";
  ep.creates_layer = true;
  ep.build = build_layer_create;
  ep.invoke = [](Call& c) {
    return megamoe_moe_layer_create(c.ctx, c.config_present ? &c.config : nullptr, c.t("w13"), c.t("w13_scales"),
                                    c.t("w2"), c.t("w2_scales"), nullptr, &g_out_layer);
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  auto cfg = [](auto field_setter) { return [field_setter](Call& c) { field_setter(c.config); }; };
  auto to_bf16 = [](Call& c, const std::string& n) {
    c.set_dtype(n, MEGAMOE_DTYPE_BF16);
    std::memset(c.arg(n).storage.data(), 0, c.arg(n).storage.size());
  };
  run_entry_point(
      ep,
      {
          {"NULL context", [](Call& c) { c.ctx = nullptr; }, {q("context")}},
          {"NULL config", [](Call& c) { c.config_present = false; }, {q("config")}},
          {"struct_size 0", cfg([](megamoe_moe_config_t& f) { f.struct_size = 0; }), {"struct_size"}},
          {"struct_size - 4", cfg([](megamoe_moe_config_t& f) { f.struct_size = sizeof f - 4; }), {"struct_size"}},
          {"struct_size + 4", cfg([](megamoe_moe_config_t& f) { f.struct_size = sizeof f + 4; }), {"struct_size"}},
          {"num_experts 0", cfg([](megamoe_moe_config_t& f) { f.num_experts = 0; }), {"num_experts"}},
          {"num_experts -1", cfg([](megamoe_moe_config_t& f) { f.num_experts = -1; }), {"num_experts"}},
          {"num_experts 1025", cfg([](megamoe_moe_config_t& f) { f.num_experts = 1025; }), {"num_experts"}},
          {"top_k 0", cfg([](megamoe_moe_config_t& f) { f.top_k = 0; }), {"top_k"}},
          {"top_k 17", cfg([](megamoe_moe_config_t& f) { f.top_k = 17; }), {"top_k"}},
          {"hidden 200", cfg([](megamoe_moe_config_t& f) { f.hidden = 200; }), {"hidden"}},
          {"hidden 0", cfg([](megamoe_moe_config_t& f) { f.hidden = 0; }), {"hidden"}},
          {"intermediate 200", cfg([](megamoe_moe_config_t& f) { f.intermediate = 200; }), {"intermediate"}},
          {"intermediate -128", cfg([](megamoe_moe_config_t& f) { f.intermediate = -128; }), {"intermediate"}},
          {"max_tokens 0", cfg([](megamoe_moe_config_t& f) { f.max_tokens = 0; }), {"max_tokens"}},
          {"max_tokens -5", cfg([](megamoe_moe_config_t& f) { f.max_tokens = -5; }), {"max_tokens"}},
          {"negative clamp", cfg([](megamoe_moe_config_t& f) { f.activation_clamp = -1.0f; }), {"activation_clamp"}},
          {"NaN clamp", cfg([nan](megamoe_moe_config_t& f) { f.activation_clamp = nan; }), {"activation_clamp"}},
          {"NaN alpha", cfg([nan](megamoe_moe_config_t& f) { f.activation_alpha = nan; }), {"activation_alpha"}},
          {"infinite alpha", cfg([inf](megamoe_moe_config_t& f) { f.activation_alpha = inf; }), {"activation_alpha"}},
          {"NaN beta", cfg([nan](megamoe_moe_config_t& f) { f.activation_beta = nan; }), {"activation_beta"}},
          {"NaN routed_scaling_factor", cfg([nan](megamoe_moe_config_t& f) { f.routed_scaling_factor = nan; }),
           {"routed_scaling_factor"}},
          {"infinite routed_scaling_factor", cfg([inf](megamoe_moe_config_t& f) { f.routed_scaling_factor = -inf; }),
           {"routed_scaling_factor"}},
          {"unknown flag", cfg([](megamoe_moe_config_t& f) { f.flags = 8; }), {"flags"}},
          {"FP8 w13 without scales", [](Call& c) { c.arg("w13_scales").present = false; }, {q("w13_scales")}},
          {"FP8 w2 without scales", [](Call& c) { c.arg("w2_scales").present = false; }, {q("w2_scales")}},
          {"BF16 w13 with scales", [to_bf16](Call& c) { to_bf16(c, "w13"); }, {q("w13_scales")}},
          {"BF16 w2 with scales", [to_bf16](Call& c) { to_bf16(c, "w2"); }, {q("w2_scales")}},
          {"w13 rows != 2I", [](Call& c) {
             c.reshape("w13", {4, 384, 128});
             c.reshape("w13_scales", {4, 3, 1});
           },
           {q("w13")}},
          {"w13 E != num_experts", [](Call& c) {
             c.reshape("w13", {3, 256, 128});
             c.reshape("w13_scales", {3, 2, 1});
           },
           {q("w13")}},
          {"w13 columns != H", [](Call& c) {
             c.reshape("w13", {4, 256, 256});
             c.reshape("w13_scales", {4, 2, 2});
           },
           {q("w13")}},
          {"w13 rank 2", [](Call& c) {
             c.reshape("w13", {256, 128});
             c.reshape("w13_scales", {2, 1});
           },
           {q("w13"), q("w13_scales")}},
          {"w2 shape [E, I, H] swapped", [](Call& c) {
             c.reshape("w2", {4, 128, 256});
             c.reshape("w2_scales", {4, 1, 2});
           },
           {q("w2")}},
          {"w13_scales wrong", [](Call& c) { c.reshape("w13_scales", {4, 2, 2}); }, {q("w13_scales")}},
          {"w13_scales E wrong", [](Call& c) { c.reshape("w13_scales", {3, 2, 1}); }, {q("w13_scales")}},
          {"w2_scales wrong", [](Call& c) { c.reshape("w2_scales", {4, 2, 1}); }, {q("w2_scales")}},
      });
  // A NULL out_layer.
  mmt::ScopedContext ctx;
  Call c(ctx);
  build_layer_create(c);
  const int64_t live = megamoe_live_object_count();
  EXPECT_EQ(megamoe_moe_layer_create(ctx, &c.config, c.t("w13"), c.t("w13_scales"), c.t("w2"), c.t("w2_scales"),
                                     nullptr, nullptr),
            MEGAMOE_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(mmt::contains(last_error(), "'out_layer'")) << last_error();
  EXPECT_EQ(megamoe_live_object_count(), live);
}

// ------------------------------------------------------------------------------------------------
// 5. MoE forward
// ------------------------------------------------------------------------------------------------
void build_forward(Call& c) {
  Call weights(c.ctx);
  build_layer_create(weights);
  megamoe_moe_layer_t layer = nullptr;
  EXPECT_EQ(megamoe_moe_layer_create(c.ctx, &weights.config, weights.t("w13"), weights.t("w13_scales"), weights.t("w2"),
                                     weights.t("w2_scales"), nullptr, &layer),
            MEGAMOE_SUCCESS)
      << last_error();
  c.layer = c.owned_layer = layer;
  c.add("x", MEGAMOE_DTYPE_BF16, {5, 128}, {MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP8_E4M3});
  for (int i = 0; i < 5 * 128; ++i) c.data<uint16_t>("x")[i] = static_cast<uint16_t>(0x3F80 + (i % 5));
  c.add("x_scales", MEGAMOE_DTYPE_FP32, {5, 1}, {MEGAMOE_DTYPE_FP32}, false, true).present = false;
  c.add("topk_idx", MEGAMOE_DTYPE_INT32, {5, 2}, {MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64});
  const int32_t idx[10] = {0, 1, 2, 3, -1, -1, 3, 3, 1, -1};
  for (int i = 0; i < 10; ++i) c.data<int32_t>("topk_idx")[i] = idx[i];
  c.add("topk_weights", MEGAMOE_DTYPE_FP32, {5, 2}, {MEGAMOE_DTYPE_FP32});
  fill_f32(c, "topk_weights", 0.5f);
  c.add("y", MEGAMOE_DTYPE_BF16, {5, 128}, {MEGAMOE_DTYPE_BF16}, true);
  c.add("expert_counts", MEGAMOE_DTYPE_INT32, {4}, {MEGAMOE_DTYPE_INT32}, true, true);
  c.add("num_tokens", MEGAMOE_DTYPE_INT32, {1}, {MEGAMOE_DTYPE_INT32}, false, true);
  c.data<int32_t>("num_tokens")[0] = 5;
}

TEST(Validation, MoeLayerForward) {
  EntryPoint ep;
  ep.function = "moe_layer_forward";
  ep.build = build_forward;
  ep.invoke = [](Call& c) {
    return megamoe_moe_layer_forward(c.layer, c.t("x"), c.t("x_scales"), c.t("topk_idx"), c.t("topk_weights"),
                                     c.t("y"), c.t("expert_counts"), c.t("num_tokens"), nullptr);
  };
  auto resize_tokens = [](Call& c, int64_t T) {
    c.reshape("x", {T, 128});
    c.reshape("topk_idx", {T, 2});
    c.reshape("topk_weights", {T, 2});
    c.reshape("y", {T, 128});
  };
  auto fp8_x = [](Call& c) {
    c.set_dtype("x", MEGAMOE_DTYPE_FP8_E4M3);
    fill_fp8(c, "x");
    c.arg("x_scales").present = true;
    fill_f32(c, "x_scales", 0.1f);
  };
  run_entry_point(
      ep, {
              {"NULL layer", [](Call& c) { c.layer = nullptr; }, {q("layer")}},
              {"FP32 x", [](Call& c) { c.set_dtype("x", MEGAMOE_DTYPE_FP32); }, {q("x")}},
              {"FP8 x without x_scales", [](Call& c) { c.set_dtype("x", MEGAMOE_DTYPE_FP8_E4M3); }, {q("x_scales")}},
              {"BF16 x with x_scales", [](Call& c) { c.arg("x_scales").present = true; }, {q("x_scales")}},
              {"x_scales wrong groups", [fp8_x](Call& c) {
                 fp8_x(c);
                 c.reshape("x_scales", {5, 2});
               },
               {q("x_scales")}},
              {"x_scales wrong rows", [fp8_x](Call& c) {
                 fp8_x(c);
                 c.reshape("x_scales", {4, 1});
               },
               {q("x_scales")}},
              {"x_scales BF16", [fp8_x](Call& c) {
                 fp8_x(c);
                 c.set_dtype("x_scales", MEGAMOE_DTYPE_BF16);
               },
               {q("x_scales")}},
              {"x_scales misaligned", [fp8_x](Call& c) {
                 fp8_x(c);
                 c.arg("x_scales").desc.data = c.data<uint8_t>("x_scales") + 4;
               },
               {q("x_scales")}},
              {"x H wrong", [](Call& c) { c.reshape("x", {5, 256}); }, {q("x")}},
              {"T > max_tokens", [resize_tokens](Call& c) { resize_tokens(c, 9); }, {q("x"), "max_tokens"}},
              {"topk_idx top_k wrong", [](Call& c) { c.reshape("topk_idx", {5, 3}); }, {q("topk_idx")}},
              {"topk_idx T wrong", [](Call& c) { c.reshape("topk_idx", {4, 2}); }, {q("topk_idx")}},
              {"topk_idx = E", [](Call& c) { c.data<int32_t>("topk_idx")[9] = 4; }, {q("topk_idx")}},
              {"topk_idx = -2", [](Call& c) { c.data<int32_t>("topk_idx")[2] = -2; }, {q("topk_idx")}},
              {"topk_idx = E (int64)", [](Call& c) {
                 c.set_dtype("topk_idx", MEGAMOE_DTYPE_INT64);
                 for (int i = 0; i < 10; ++i) c.data<int64_t>("topk_idx")[i] = i == 4 ? 4 : 0;
               },
               {q("topk_idx")}},
              {"NULL topk_weights", [](Call& c) { c.arg("topk_weights").present = false; }, {q("topk_weights")}},
              {"topk_weights wrong", [](Call& c) { c.reshape("topk_weights", {5, 3}); }, {q("topk_weights")}},
              {"y H wrong", [](Call& c) { c.reshape("y", {5, 256}); }, {q("y")}},
              {"y T wrong", [](Call& c) { c.reshape("y", {4, 128}); }, {q("y")}},
              {"expert_counts E + 1", [](Call& c) { c.reshape("expert_counts", {5}); }, {q("expert_counts")}},
              {"expert_counts E - 1", [](Call& c) { c.reshape("expert_counts", {3}); }, {q("expert_counts")}},
              {"num_tokens 2 entries", [](Call& c) { c.reshape("num_tokens", {2}); }, {q("num_tokens")}},
              {"num_tokens > T", [](Call& c) { c.data<int32_t>("num_tokens")[0] = 6; }, {q("num_tokens")}},
              {"num_tokens negative", [](Call& c) { c.data<int32_t>("num_tokens")[0] = -1; }, {q("num_tokens")}},
              {"expert_counts aliases x_scales (FP8 x)", [fp8_x](Call& c) {
                 fp8_x(c);
                 c.arg("expert_counts").desc.data = c.arg("x_scales").desc.data;
               },
               {q("expert_counts"), q("x_scales")}},
              {"y aliases x_scales (FP8 x)", [fp8_x](Call& c) {
                 fp8_x(c);
                 c.arg("y").desc.data = c.arg("x_scales").desc.data;
               },
               {q("y"), q("x_scales")}},
          });
}

}  // namespace
