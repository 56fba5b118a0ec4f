#include "harness.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace fuzz {
namespace {

// Tensors that claim more than this get no memory (data = NULL): the library must then reject
// them, and no accepted call can make the harness run for long.
constexpr int64_t kMaxTensorBytes = int64_t{4} << 20;
constexpr uint32_t kPoison = 0xA5u;

int64_t element_size(int32_t dtype) {
  switch (dtype) {
    case MEGAMOE_DTYPE_FP8_E4M3: return 1;
    case MEGAMOE_DTYPE_BF16: return 2;
    case MEGAMOE_DTYPE_FP32:
    case MEGAMOE_DTYPE_INT32: return 4;
    case MEGAMOE_DTYPE_INT64: return 8;
    default: return 1;  // an unknown dtype is rejected before its data is looked at
  }
}

// Bytes a descriptor describes, or -1 when it describes nothing the harness could back (bad rank,
// a negative or overflowing shape, more than kMaxTensorBytes).
int64_t described_bytes(const megamoe_tensor_t& t) {
  if (t.rank < 1 || t.rank > MEGAMOE_MAX_RANK) return 0;
  int64_t bytes = element_size(t.dtype);
  for (int32_t i = 0; i < t.rank; ++i) {
    if (t.shape[i] < 0) return -1;
    if (t.shape[i] == 0) return 0;
  }
  for (int32_t i = 0; i < t.rank; ++i) {
    if (t.shape[i] > kMaxTensorBytes / bytes) return -1;
    bytes *= t.shape[i];
  }
  return bytes;
}

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

struct Lcg {
  uint64_t state;
  uint32_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  }
};

uint32_t special_fp32(uint32_t r) {
  const float specials[] = {NAN, -NAN, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, 1e-45f, -0.0f, 1e30f, 448.0f};
  return float_bits(specials[r % (sizeof specials / sizeof specials[0])]);
}

}  // namespace

void fail(const std::string& what) {
  std::fprintf(stderr, "\n==megamoe-fuzz== invariant violated: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

megamoe_context_t shared_context() {
  static megamoe_context_t context = [] {
    megamoe_context_t c = nullptr;
    if (megamoe_context_create(MEGAMOE_BACKEND_CPU, 0, &c) != MEGAMOE_SUCCESS ||
        megamoe_context_set_num_threads(c, 1) != MEGAMOE_SUCCESS) {
      fail(std::string("cannot create the CPU context: ") + megamoe_last_error_message());
    }
    return c;
  }();
  return context;
}

namespace {
// A live handle of another kind, made once (before any input's live-object baseline is taken).
megamoe_buffer_t foreign_handle() {
  static megamoe_buffer_t buffer = [] {
    megamoe_buffer_t b = nullptr;
    if (megamoe_buffer_create(shared_context(), 0, &b) != MEGAMOE_SUCCESS) fail("cannot create a buffer");
    return b;
  }();
  return buffer;
}
}  // namespace

megamoe_context_t context_argument(FuzzInput& in, megamoe_context_t good, bool& is_good) {
  alignas(64) static unsigned char zeros[256] = {};
  is_good = false;
  switch (in.byte() % 16) {
    case 13: return nullptr;
    case 14: return reinterpret_cast<megamoe_context_t>(zeros);
    case 15: return reinterpret_cast<megamoe_context_t>(foreign_handle());
    default: is_good = true; return good;
  }
}

int run_input(const uint8_t* data, size_t size, const std::function<void(FuzzInput&)>& body) {
  shared_context();
  foreign_handle();
  const int64_t before = megamoe_live_object_count();
  {
    FuzzInput in(data, size);
    body(in);
  }
  const int64_t after = megamoe_live_object_count();
  if (after != before) {
    fail("megamoe_live_object_count() is " + std::to_string(after) + " after the input, " + std::to_string(before) +
         " before: a handle leaked or was freed twice");
  }
  return 0;
}

std::optional<std::vector<int64_t>> read_indices(const megamoe_tensor_t* desc) {
  if (desc == nullptr || desc->data == nullptr) return std::nullopt;
  if (desc->dtype != MEGAMOE_DTYPE_INT32 && desc->dtype != MEGAMOE_DTYPE_INT64) return std::nullopt;
  const int64_t bytes = described_bytes(*desc);
  if (bytes < 0) return std::nullopt;
  const int64_t count = bytes / element_size(desc->dtype);
  std::vector<int64_t> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    if (desc->dtype == MEGAMOE_DTYPE_INT32) {
      int32_t v;
      std::memcpy(&v, static_cast<const char*>(desc->data) + 4 * i, 4);
      values[static_cast<size_t>(i)] = v;
    } else {
      std::memcpy(&values[static_cast<size_t>(i)], static_cast<const char*>(desc->data) + 8 * i, 8);
    }
  }
  return values;
}

int64_t expert_index(FuzzInput& in, int64_t experts) {
  const uint8_t b = in.byte();
  if (b < 224) {
    const int64_t e = b % (experts + 1);
    return e == experts ? -1 : e;  // -1: a dropped slot
  }
  const int64_t specials[] = {experts,
                              -2,
                              experts + 1,
                              std::numeric_limits<int32_t>::max(),
                              std::numeric_limits<int32_t>::min(),
                              std::numeric_limits<int64_t>::max(),
                              std::numeric_limits<int64_t>::min(),
                              int64_t{1} << 32};  // 0 once truncated to INT32
  return specials[b % 8];
}

bool experts_in_range(const std::vector<int64_t>& v, int64_t experts, int64_t count) {
  for (int64_t i = 0; i < count && i < static_cast<int64_t>(v.size()); ++i) {
    if (v[static_cast<size_t>(i)] < -1 || v[static_cast<size_t>(i)] >= experts) return false;
  }
  return true;
}

unsigned char* Call::allocate(size_t size, size_t misalign, Role role) {
  auto block = std::make_unique<Block>();
  // Exactly the bytes claimed (after a deliberate misalignment): ASan then reports a read or a
  // write even one byte beyond what the descriptor describes.
  const size_t total = size + misalign;
  block->owner.reset(static_cast<unsigned char*>(::operator new(total, std::align_val_t{64})));
  block->begin = block->owner.get() + misalign;
  block->size = size;
  block->role = role;
  unsigned char* p = block->begin;
  blocks_.push_back(std::move(block));
  return p;
}

void Call::fill_numbers(unsigned char* data, int32_t dtype, int64_t count) {
  const uint8_t mode = in_.byte() % 4;  // 0 ordinary, 1 zeros, 2 raw bits, 3 ordinary and specials
  Lcg rng{in_.u32() + 1ull};
  const int64_t size = element_size(dtype);
  if (mode == 1) {
    std::memset(data, 0, static_cast<size_t>(count * size));
    return;
  }
  if (mode == 2 || dtype == MEGAMOE_DTYPE_FP8_E4M3 || dtype < MEGAMOE_DTYPE_FP8_E4M3 || dtype > MEGAMOE_DTYPE_INT64) {
    // Raw bits; ordinary FP8 codes only avoid the two NaN codes.
    const size_t bytes = static_cast<size_t>(count * size);
    for (size_t i = 0; i < bytes; i += 4) {
      const uint32_t r = rng.next();
      std::memcpy(data + i, &r, std::min<size_t>(4, bytes - i));
    }
    if (mode != 2 && dtype == MEGAMOE_DTYPE_FP8_E4M3) {
      for (size_t i = 0; i < bytes; ++i) data[i] = (data[i] & 0x7f) == 0x7f ? 0x7e : data[i];
    }
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t r = rng.next();
    uint32_t v32;  // FP32 bits (BF16 keeps the top half); small integers for INT32/INT64
    if (dtype == MEGAMOE_DTYPE_INT32 || dtype == MEGAMOE_DTYPE_INT64) {
      v32 = r % 16;
    } else if (mode == 3 && r % 8 == 0) {
      v32 = special_fp32(r >> 3);
    } else {
      v32 = float_bits(static_cast<float>(static_cast<int32_t>(r % 2001) - 1000) / 256.0f);
    }
    unsigned char* out = data + i * size;
    if (dtype == MEGAMOE_DTYPE_BF16) {
      const auto h = static_cast<uint16_t>(v32 >> 16);
      std::memcpy(out, &h, 2);
    } else if (dtype == MEGAMOE_DTYPE_INT64) {
      const int64_t w = v32;
      std::memcpy(out, &w, 8);
    } else {
      std::memcpy(out, &v32, 4);
    }
  }
}

void Call::mutate(megamoe_tensor_t& t, int64_t& misalign, int& alias) {
  const uint8_t kind = in_.byte() % 32;
  if (kind < 16) return;
  mutated_ = true;
  const int32_t dim = t.rank > 0 ? static_cast<int32_t>(in_.byte() % static_cast<uint8_t>(t.rank)) : 0;
  switch (kind) {
    case 17: t.rank = in_.pick<int32_t>({0, 5, -1, t.rank - 1, t.rank + 1, std::numeric_limits<int32_t>::min()}); break;
    case 18: t.dtype = in_.pick<int32_t>({0, 6, -1, 1, 2, 3, 4, 5}); break;
    case 19:
      t.shape[dim] = in_.pick<int64_t>({-1, 0, 1, 127, 129, int64_t{1} << 31, int64_t{1} << 40, (int64_t{1} << 47) + 1,
                                        std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()});
      break;
    case 20: t.shape[dim] += in_.pick<int64_t>({1, -1, 128, -128}); break;
    case 21:
      t.strides[dim] = in_.pick<int64_t>({0, -1, t.strides[dim] + 1, std::numeric_limits<int64_t>::max(),
                                          t.strides[dim] * 2});
      break;
    case 22: t.device_type = in_.pick<int32_t>({2, 0, 3, -1}); break;
    case 23: t.device_id = in_.pick<int32_t>({1, -1, std::numeric_limits<int32_t>::max()}); break;
    case 24: misalign = in_.small(1, 16); break;
    case 25: misalign = -1; break;  // data = NULL
    case 26:
    case 27:
      if (!blocks_.empty()) alias = static_cast<int>(in_.byte() % blocks_.size()) * 2 + (kind == 27 ? 1 : 0);
      break;
    case 28:
      for (int32_t i = 0; i < MEGAMOE_MAX_RANK; ++i) t.shape[i] = 0;
      break;
    case 29: {
      const int32_t other = t.rank > 0 ? static_cast<int32_t>(in_.byte() % static_cast<uint8_t>(t.rank)) : 0;
      std::swap(t.shape[dim], t.shape[other]);
      break;
    }
    case 30:  // a descriptor of garbage
      t.rank = static_cast<int32_t>(in_.u32());
      t.dtype = static_cast<int32_t>(in_.u32());
      for (int32_t i = 0; i < MEGAMOE_MAX_RANK; ++i) {
        t.shape[i] = static_cast<int64_t>(in_.u64());
        t.strides[i] = static_cast<int64_t>(in_.u64());
      }
      break;
    default: t.shape[0] *= 2; break;
  }
}

void Call::back(megamoe_tensor_t& t, int64_t misalign, int alias, Role role,
                const std::function<int64_t(int64_t)>& index) {
  const int64_t bytes = described_bytes(t);
  if (misalign < 0 || bytes < 0) {
    t.data = nullptr;
    return;
  }
  if (alias >= 0) {
    // Another argument's memory, whole or from 16 bytes in; NULL if it does not cover the claim.
    const Block& target = *blocks_[static_cast<size_t>(alias / 2)];
    const size_t offset = (alias % 2 == 1) ? 16 : 0;
    const bool fits = offset + static_cast<size_t>(bytes) <= target.size;
    t.data = fits ? target.begin + offset : nullptr;
    return;
  }
  unsigned char* data = allocate(static_cast<size_t>(bytes), static_cast<size_t>(misalign), role);
  t.data = data;
  const int64_t count = bytes / element_size(t.dtype);
  if (role == Role::kOutput) {
    std::memset(data, static_cast<int>(kPoison ^ in_.byte()), static_cast<size_t>(bytes));
  } else if (index && (t.dtype == MEGAMOE_DTYPE_INT32 || t.dtype == MEGAMOE_DTYPE_INT64)) {
    for (int64_t i = 0; i < count; ++i) {
      const int64_t v = index(i);
      if (t.dtype == MEGAMOE_DTYPE_INT32) {
        const auto v32 = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(v)));
        std::memcpy(data + 4 * i, &v32, 4);
      } else {
        std::memcpy(data + 8 * i, &v, 8);
      }
    }
  } else {
    fill_numbers(data, t.dtype, count);
  }
}

const megamoe_tensor_t* Call::tensor(megamoe_dtype_t dtype, const std::vector<int64_t>& shape, Role role,
                                     const std::function<int64_t(int64_t)>& index) {
  auto t = std::make_unique<megamoe_tensor_t>();
  std::memset(t.get(), 0, sizeof *t);
  t->device_type = MEGAMOE_DEVICE_CPU;
  t->dtype = dtype;
  t->rank = static_cast<int32_t>(shape.size());
  int64_t stride = 1;
  for (int32_t i = t->rank - 1; i >= 0; --i) {
    t->shape[i] = shape[static_cast<size_t>(i)];
    t->strides[i] = stride;
    stride *= shape[static_cast<size_t>(i)] > 0 ? shape[static_cast<size_t>(i)] : 1;
  }
  int64_t misalign = 0;
  int alias = -1;
  const uint8_t peek_null = in_.byte();
  if (peek_null == 255) {
    mutated_ = true;
    return nullptr;
  }
  mutate(*t, misalign, alias);
  back(*t, misalign, alias, role, index);
  descs_.push_back(std::move(t));
  return descs_.back().get();
}

const megamoe_tensor_t* Call::optional_tensor(megamoe_dtype_t dtype, const std::vector<int64_t>& shape, Role role,
                                              const std::function<int64_t(int64_t)>& index) {
  if (in_.flag()) return nullptr;
  return tensor(dtype, shape, role, index);
}

void* Call::bytes(int64_t size, Role role) {
  if (in_.byte() % 8 == 7) {
    mutated_ = true;
    return nullptr;
  }
  const int64_t n = size < 1 ? 1 : (size > kMaxTensorBytes ? 16 : size);
  unsigned char* p = allocate(static_cast<size_t>(n), 0, role);
  std::memset(p, role == Role::kOutput ? static_cast<int>(kPoison) : 0x3c, static_cast<size_t>(n));
  return p;
}

megamoe_status_t Call::run(const std::function<megamoe_status_t()>& api, bool must_succeed, bool indices_valid) {
  for (auto& b : blocks_) b->snapshot.assign(b->begin, b->begin + b->size);
  const std::string error_before = megamoe_last_error_message();
  const megamoe_status_t status = api();
  int32_t code;
  std::memcpy(&code, &status, sizeof code);
  const std::string name(function_);
  if (code < MEGAMOE_SUCCESS || code > MEGAMOE_ERROR_INTERNAL) fail(name + " returned status " + std::to_string(code));
  const std::string message = megamoe_last_error_message();
  if (status != MEGAMOE_SUCCESS) {
    if (status == MEGAMOE_ERROR_INTERNAL) fail(name + " reported an internal error: " + message);
    if (message.rfind(name + ": ", 0) != 0 || message.size() <= name.size() + 2) {
      fail(name + " failed with " + megamoe_status_string(status) + " but the last error is '" + message + "'");
    }
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const Block& b = *blocks_[i];
      if (b.size != 0 && std::memcmp(b.snapshot.data(), b.begin, b.size) != 0) {
        fail(name + " was rejected (" + message + ") but wrote to argument memory block " + std::to_string(i));
      }
    }
    if (must_succeed) fail(name + " rejected a valid call: " + message);
  } else {
    if (message != error_before) fail(name + " succeeded but changed the last error to '" + message + "'");
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const Block& b = *blocks_[i];
      if (b.role == Role::kInput && b.size != 0 && std::memcmp(b.snapshot.data(), b.begin, b.size) != 0) {
        fail(name + " succeeded but wrote to input memory block " + std::to_string(i));
      }
    }
    if (!indices_valid) fail(name + " accepted an out-of-range index (docs/NUMERICS.md: it must be rejected)");
  }
  return status;
}

}  // namespace fuzz
