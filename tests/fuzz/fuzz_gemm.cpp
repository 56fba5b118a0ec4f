// Fuzz target: the block-scaled GEMMs (dense, grouped contiguous, grouped by offsets, grouped
// masked) with small shapes, mutated descriptors and index tensors holding out-of-range values.
#include <limits>

#include "harness.h"

using namespace fuzz;

namespace {

constexpr auto kFp8 = MEGAMOE_DTYPE_FP8_E4M3;
constexpr auto kF32 = MEGAMOE_DTYPE_FP32;
constexpr auto kBf16 = MEGAMOE_DTYPE_BF16;
constexpr auto kIn = Role::kInput;
constexpr auto kOut = Role::kOutput;

struct Dims {
  int64_t m, n, k, e;
  bool valid;  // N and K positive multiples of 128, E >= 1
};

Dims read_dims(FuzzInput& in) {
  Dims d{};
  d.m = in.pick<int64_t>({2, 0, 1, 3, 5, 129});  // 129: rows in a second aligned block of 128
  d.n = in.pick<int64_t>({128, 256, 0, 64, 129});
  d.k = in.pick<int64_t>({128, 256, 0, 64, 130});
  d.e = in.pick<int64_t>({2, 1, 3, 0});
  d.valid = d.n > 0 && d.n % 128 == 0 && d.k > 0 && d.k % 128 == 0 && d.e >= 1;
  return d;
}

// The index oracles below apply only when the output has elements: a call with an empty output
// reads no index tensor and succeeds (docs/RELIABILITY.md, "Out-of-range indices").

// m_indices: -1 or an expert, one expert per aligned block of 128 rows.
bool contiguous_valid(const std::vector<int64_t>& v, int64_t experts) {
  if (!experts_in_range(v, experts, static_cast<int64_t>(v.size()))) return false;
  for (size_t first = 0; first < v.size(); first += 128) {
    int64_t expert = -1;
    for (size_t m = first; m < v.size() && m < first + 128; ++m) {
      if (v[m] == -1) continue;
      if (expert != -1 && v[m] != expert) return false;
      expert = v[m];
    }
  }
  return true;
}

bool offsets_valid(const std::vector<int64_t>& v, int64_t rows) {
  if (v.empty() || v.front() < 0 || v.back() > rows) return false;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] < v[i - 1]) return false;
  }
  return true;
}

void dense(FuzzInput& in) {
  const Dims d = read_dims(in);
  bool good_context = false;
  megamoe_context_t context = context_argument(in, shared_context(), good_context);
  Call call(in, "megamoe_gemm_dense");
  const auto* a = call.tensor(kFp8, {d.m, d.k}, kIn);
  const auto* a_scales = call.tensor(kF32, {d.m, d.k / 128}, kIn);
  const auto* b = call.tensor(kFp8, {d.n, d.k}, kIn);
  const auto* b_scales = call.tensor(kF32, {d.n / 128, d.k / 128}, kIn);
  const auto* out = call.tensor(kBf16, {d.m, d.n}, kOut);
  void* stream = stream_argument(in);
  call.run([&] { return megamoe_gemm_dense(context, a, a_scales, b, b_scales, out, stream); },
           good_context && d.valid && !call.mutated());
}

void contiguous(FuzzInput& in) {
  const Dims d = read_dims(in);
  bool good_context = false;
  megamoe_context_t context = context_argument(in, shared_context(), good_context);
  Call call(in, "megamoe_gemm_grouped_contiguous");
  const auto* a = call.tensor(kFp8, {d.m, d.k}, kIn);
  const auto* a_scales = call.tensor(kF32, {d.m, d.k / 128}, kIn);
  const auto* b = call.tensor(kFp8, {d.e, d.n, d.k}, kIn);
  const auto* b_scales = call.tensor(kF32, {d.e, d.n / 128, d.k / 128}, kIn);
  int64_t block_expert = 0;
  const auto* m_indices = call.tensor(MEGAMOE_DTYPE_INT32, {d.m}, kIn, [&](int64_t i) -> int64_t {
    if (i % 128 == 0) block_expert = expert_index(in, d.e);
    const uint8_t r = in.byte();
    if (r % 4 == 3) return -1;                    // a padding row
    if (r >= 240) return expert_index(in, d.e);  // may mix two experts in one block
    return block_expert;
  });
  const auto* out = call.tensor(kBf16, {d.m, d.n}, kOut);
  const auto indices = read_indices(m_indices);
  const bool indices_valid = no_elements(out) || !indices || contiguous_valid(*indices, dim_of(b, 0, d.e));
  void* stream = stream_argument(in);
  call.run([&] { return megamoe_gemm_grouped_contiguous(context, a, a_scales, b, b_scales, m_indices, out, stream); },
           good_context && d.valid && indices_valid && !call.mutated(), indices_valid);
}

void offsets(FuzzInput& in) {
  const Dims d = read_dims(in);
  bool good_context = false;
  megamoe_context_t context = context_argument(in, shared_context(), good_context);
  Call call(in, "megamoe_gemm_grouped_offsets");
  const auto* a = call.tensor(kFp8, {d.m, d.k}, kIn);
  const auto* a_scales = call.tensor(kF32, {d.m, d.k / 128}, kIn);
  const auto* b = call.tensor(kFp8, {d.e, d.n, d.k}, kIn);
  const auto* b_scales = call.tensor(kF32, {d.e, d.n / 128, d.k / 128}, kIn);
  const auto dtype = in.pick<megamoe_dtype_t>({MEGAMOE_DTYPE_INT32, MEGAMOE_DTYPE_INT64});
  int64_t running = 0;
  const auto* offs = call.tensor(dtype, {d.e + 1}, kIn, [&](int64_t) -> int64_t {
    const uint8_t r = in.byte();
    if (r < 240) {
      running = std::min(running + r % 3, d.m);  // non-decreasing within [0, M]
      return running;
    }
    const int64_t specials[] = {-1, d.m + 1, running - 1, std::numeric_limits<int32_t>::min(),
                                std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()};
    return specials[r % 6];
  });
  const auto* out = call.tensor(kBf16, {d.m, d.n}, kOut);
  const auto values = read_indices(offs);
  const bool indices_valid = no_elements(out) || !values || offsets_valid(*values, dim_of(a, 0, d.m));
  void* stream = stream_argument(in);
  call.run([&] { return megamoe_gemm_grouped_offsets(context, a, a_scales, b, b_scales, offs, out, stream); },
           good_context && d.valid && indices_valid && !call.mutated(), indices_valid);
}

void masked(FuzzInput& in) {
  const Dims d = read_dims(in);
  const int64_t max_m = in.pick<int64_t>({2, 0, 1, 4, 130});
  const int64_t expected_m = in.pick<int64_t>({0, 1, max_m, -1, std::numeric_limits<int64_t>::min(),
                                               std::numeric_limits<int64_t>::max()});
  bool good_context = false;
  megamoe_context_t context = context_argument(in, shared_context(), good_context);
  Call call(in, "megamoe_gemm_grouped_masked");
  const auto* a = call.tensor(kFp8, {d.e, max_m, d.k}, kIn);
  const auto* a_scales = call.tensor(kF32, {d.e, max_m, d.k / 128}, kIn);
  const auto* b = call.tensor(kFp8, {d.e, d.n, d.k}, kIn);
  const auto* b_scales = call.tensor(kF32, {d.e, d.n / 128, d.k / 128}, kIn);
  const auto* counts = call.tensor(MEGAMOE_DTYPE_INT32, {d.e}, kIn, [&](int64_t) -> int64_t {
    const uint8_t r = in.byte();
    if (r < 240) return r % (max_m + 1);
    const int64_t specials[] = {-1, max_m + 1, std::numeric_limits<int32_t>::min(),
                                std::numeric_limits<int32_t>::max()};
    return specials[r % 4];
  });
  const auto* out = call.tensor(kBf16, {d.e, max_m, d.n}, kOut);
  bool indices_valid = true;
  const int64_t rows = dim_of(a, 1, max_m);
  if (const auto values = read_indices(counts); values && !no_elements(out)) {
    for (int64_t m : *values) indices_valid = indices_valid && m >= 0 && m <= rows;
  }
  void* stream = stream_argument(in);
  call.run(
      [&] { return megamoe_gemm_grouped_masked(context, a, a_scales, b, b_scales, counts, expected_m, out, stream); },
      good_context && d.valid && expected_m >= 0 && indices_valid && !call.mutated(), indices_valid);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return run_input(data, size, [](FuzzInput& in) {
    int calls = 0;
    do {
      switch (in.byte() % 4) {
        case 0: dense(in); break;
        case 1: contiguous(in); break;
        case 2: offsets(in); break;
        default: masked(in); break;
      }
    } while (!in.exhausted() && ++calls < 4);
  });
}
