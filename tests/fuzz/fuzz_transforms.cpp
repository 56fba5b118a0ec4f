// Fuzz target: FP8 quantization (plain and checked) and dequantization of activations and weights,
// and the gate/up interleave, with small shapes, mutated descriptors and flags, and inputs holding
// NaN, infinities and raw bit patterns.
#include <cstring>
#include <limits>

#include "harness.h"

using namespace fuzz;

namespace {

constexpr auto kFp8 = MEGAMOE_DTYPE_FP8_E4M3;
constexpr auto kF32 = MEGAMOE_DTYPE_FP32;
constexpr auto kIn = Role::kInput;
constexpr auto kOut = Role::kOutput;

int64_t blocks(int64_t n) { return (n + 127) / 128; }

// Any size is valid for quantization: partial blocks of 128 are allowed.
int64_t read_extent(FuzzInput& in) { return in.pick<int64_t>({3, 0, 1, 128, 129, 256, 300}); }

uint32_t read_flags(FuzzInput& in, bool& valid) {
  const uint32_t flags = in.pick<uint32_t>({0u, MEGAMOE_QUANT_UE8M0_SCALES, 2u, 0x80000001u});
  valid = flags <= MEGAMOE_QUANT_UE8M0_SCALES;
  return flags;
}

// Rows of x [m, k] (BF16 or FP32 bits) that hold a NaN or an infinity.
int32_t nonfinite_rows_of(const megamoe_tensor_t& x, int64_t m, int64_t k) {
  int32_t rows = 0;
  for (int64_t r = 0; r < m; ++r) {
    bool found = false;
    for (int64_t c = 0; c < k; ++c) {
      uint32_t bits = 0;
      if (x.dtype == MEGAMOE_DTYPE_BF16) {
        uint16_t h;
        std::memcpy(&h, static_cast<const char*>(x.data) + 2 * (r * k + c), 2);
        bits = uint32_t{h} << 16;
      } else {
        std::memcpy(&bits, static_cast<const char*>(x.data) + 4 * (r * k + c), 4);
      }
      found = found || (bits & 0x7F800000u) == 0x7F800000u;
    }
    rows += found ? 1 : 0;
  }
  return rows;
}

void activations(FuzzInput& in, bool quantize) {
  const int64_t m = in.pick<int64_t>({2, 0, 1, 5}), k = read_extent(in);
  const auto wide = in.pick<megamoe_dtype_t>({MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32});
  bool flags_valid = true;
  const uint32_t flags = quantize ? read_flags(in, flags_valid) : 0u;
  // Now and then the checked quantizer, with or without its counter.
  const bool checked = quantize && in.byte() % 4 == 3;
  bool good_context = false;
  megamoe_context_t context = context_argument(in, shared_context(), good_context);
  Call call(in, checked ? "megamoe_quantize_activations_checked"
                : quantize ? "megamoe_quantize_activations"
                           : "megamoe_dequantize_activations");
  const auto* x = call.tensor(wide, {m, k}, quantize ? kIn : kOut);
  const auto* q = call.tensor(kFp8, {m, k}, quantize ? kOut : kIn);
  const auto* scales = call.tensor(kF32, {m, blocks(k)}, quantize ? kOut : kIn);
  const auto* nonfinite = checked ? call.optional_tensor(MEGAMOE_DTYPE_INT32, {1}, kOut) : nullptr;
  void* stream = stream_argument(in);
  const bool valid = good_context && flags_valid && !call.mutated();
  if (checked) {
    // Only an unmutated counter is known to be 4 bytes of INT32.
    const bool counted = valid && nonfinite != nullptr;
    int32_t before = 0;
    if (counted) std::memcpy(&before, nonfinite->data, 4);
    const megamoe_status_t status = call.run(
        [&] { return megamoe_quantize_activations_checked(context, x, q, scales, flags, nonfinite, stream); }, valid);
    if (status == MEGAMOE_SUCCESS && counted) {
      int32_t after = 0;
      std::memcpy(&after, nonfinite->data, 4);
      const int32_t want = static_cast<int32_t>(static_cast<uint32_t>(before) +
                                                static_cast<uint32_t>(nonfinite_rows_of(*x, m, k)));
      if (after != want) fail("megamoe_quantize_activations_checked counted the non-finite rows wrongly");
    }
  } else if (quantize) {
    call.run([&] { return megamoe_quantize_activations(context, x, q, scales, flags, stream); }, valid);
  } else {
    call.run([&] { return megamoe_dequantize_activations(context, q, scales, x, stream); }, valid);
  }
}

void weights(FuzzInput& in, bool quantize) {
  const bool grouped = in.flag();
  const int64_t e = in.pick<int64_t>({2, 1, 0, 3}), n = read_extent(in), k = read_extent(in);
  const auto wide = in.pick<megamoe_dtype_t>({MEGAMOE_DTYPE_BF16, MEGAMOE_DTYPE_FP32});
  bool flags_valid = true;
  const uint32_t flags = quantize ? read_flags(in, flags_valid) : 0u;
  bool good_context = false;
  megamoe_context_t context = context_argument(in, shared_context(), good_context);
  Call call(in, quantize ? "megamoe_quantize_weights" : "megamoe_dequantize_weights");
  const std::vector<int64_t> shape = grouped ? std::vector<int64_t>{e, n, k} : std::vector<int64_t>{n, k};
  const std::vector<int64_t> scales_shape =
      grouped ? std::vector<int64_t>{e, blocks(n), blocks(k)} : std::vector<int64_t>{blocks(n), blocks(k)};
  const auto* w = call.tensor(wide, shape, quantize ? kIn : kOut);
  const auto* q = call.tensor(kFp8, shape, quantize ? kOut : kIn);
  const auto* scales = call.tensor(kF32, scales_shape, quantize ? kOut : kIn);
  void* stream = stream_argument(in);
  const bool valid = good_context && flags_valid && !call.mutated();
  if (quantize) {
    call.run([&] { return megamoe_quantize_weights(context, w, q, scales, flags, stream); }, valid);
  } else {
    call.run([&] { return megamoe_dequantize_weights(context, q, scales, w, stream); }, valid);
  }
}

void interleave(FuzzInput& in) {
  const bool grouped = in.flag();
  const int64_t e = in.pick<int64_t>({2, 1, 0}), rows = in.pick<int64_t>({16, 32, 0, 8, 24, 256});
  const int64_t h = in.pick<int64_t>({3, 1, 128, 0});
  const auto dtype = in.pick<megamoe_dtype_t>(
      {MEGAMOE_DTYPE_BF16, kFp8, kF32, MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64});
  const int32_t inverse = in.pick<int32_t>({0, 1, 2, -1, std::numeric_limits<int32_t>::min()});
  bool good_context = false;
  megamoe_context_t context = context_argument(in, shared_context(), good_context);
  Call call(in, "megamoe_interleave_gate_up");
  const std::vector<int64_t> shape = grouped ? std::vector<int64_t>{e, rows, h} : std::vector<int64_t>{rows, h};
  const auto* w = call.tensor(dtype, shape, kIn);
  const auto* out = call.tensor(dtype, shape, kOut);
  void* stream = stream_argument(in);
  const bool valid = good_context && rows % 16 == 0 && (inverse == 0 || inverse == 1) && !call.mutated();
  call.run([&] { return megamoe_interleave_gate_up(context, w, out, inverse, stream); }, valid);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return run_input(data, size, [](FuzzInput& in) {
    int calls = 0;
    do {
      switch (in.byte() % 5) {
        case 0: activations(in, true); break;
        case 1: activations(in, false); break;
        case 2: weights(in, true); break;
        case 3: weights(in, false); break;
        default: interleave(in); break;
      }
    } while (!in.exhausted() && ++calls < 4);
  });
}
