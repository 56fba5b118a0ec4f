#include "abi/checks.h"

#include <cstring>
#include <string>
#include <vector>

namespace megamoe {
namespace {

constexpr uintptr_t kAlignment = 16;                 // TMA and 16-byte vector access need it

const char* device_name(int32_t type) {
  switch (type) {
    case MEGAMOE_DEVICE_CPU: return "CPU";
    case MEGAMOE_DEVICE_CUDA: return "CUDA";
    default: return nullptr;
  }
}

std::string device_text(int32_t type, int32_t id) {
  const char* name = device_name(type);
  if (name == nullptr) return cat("device type ", type);
  return type == MEGAMOE_DEVICE_CPU ? std::string("the CPU") : cat(name, " device ", id);
}

int32_t count_dims(const char* layout) {
  // "[M, K]" -> 2
  int32_t dims = 1;
  for (const char* c = layout; *c != '\0'; ++c) dims += (*c == ',') ? 1 : 0;
  return dims;
}

std::string shape_text(const megamoe_tensor_t& t) {
  std::string s = "[";
  for (int32_t i = 0; i < t.rank; ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}

std::string dtype_list(std::initializer_list<megamoe_dtype_t> dtypes) {
  std::string s;
  size_t i = 0;
  for (megamoe_dtype_t d : dtypes) {
    if (i++) s += (i == dtypes.size()) ? " or " : ", ";
    s += dtype_name(d);
  }
  return s;
}

bool known_dtype(int32_t dtype) { return dtype >= MEGAMOE_DTYPE_FP8_E4M3 && dtype <= MEGAMOE_DTYPE_INT64; }

}  // namespace

Tensor TensorChecker::tensor(const char* argument, const megamoe_tensor_t* desc,
                             std::initializer_list<megamoe_dtype_t> dtypes, const char* layout) const {
  return checked(argument, desc, dtypes, layout, nullptr);
}

Tensor TensorChecker::tensor(const char* argument, const megamoe_tensor_t* desc,
                             std::initializer_list<megamoe_dtype_t> dtypes, const char* layout,
                             const char* other_layout) const {
  return checked(argument, desc, dtypes, layout, other_layout);
}

std::optional<Tensor> TensorChecker::optional_tensor(const char* argument, const megamoe_tensor_t* desc,
                                                     std::initializer_list<megamoe_dtype_t> dtypes,
                                                     const char* layout) const {
  if (desc == nullptr) return std::nullopt;
  return checked(argument, desc, dtypes, layout, nullptr);
}

Tensor TensorChecker::checked(const char* argument, const megamoe_tensor_t* desc,
                              std::initializer_list<megamoe_dtype_t> dtypes, const char* layout,
                              const char* other_layout) const {
  if (desc == nullptr) invalid(argument, "tensor descriptor is NULL; expected ", layout);
  const megamoe_tensor_t& t = *desc;

  const int32_t rank = count_dims(layout);
  const int32_t other_rank = other_layout ? count_dims(other_layout) : rank;
  if (t.rank != rank && t.rank != other_rank) {
    invalid(argument, "rank is ", t.rank, "; expected ", rank, " ", layout,
            other_layout ? cat(" or ", other_rank, " ", other_layout) : std::string());
  }
  const char* actual_layout = t.rank == rank ? layout : other_layout;

  if (!known_dtype(t.dtype)) invalid(argument, "dtype code ", t.dtype, " is not a megamoe_dtype_t");
  bool allowed = false;
  for (megamoe_dtype_t d : dtypes) allowed = allowed || d == t.dtype;
  if (!allowed) {
    invalid(argument, "dtype is ", dtype_name(static_cast<megamoe_dtype_t>(t.dtype)), "; expected ",
            dtype_list(dtypes));
  }

  int64_t numel = 1;
  for (int32_t i = 0; i < t.rank; ++i) {
    if (t.shape[i] < 0) invalid(argument, "shape[", i, "] is ", t.shape[i], " (negative) in ", actual_layout);
    // Checked even when another extent is 0: callers derive sizes from extents (ceil(K / 128), E + 1),
    // which must not overflow for an empty tensor either.
    if (t.shape[i] > kMaxExtent) {
      invalid(argument, "shape[", i, "] is ", t.shape[i], " in ", actual_layout, "; no extent may exceed 2^48");
    }
    if (t.shape[i] > 0 && numel > kMaxExtent / t.shape[i]) {
      invalid(argument, "shape ", shape_text(t), " has more than 2^48 elements");
    }
    numel *= t.shape[i];
  }

  if (device_name(t.device_type) == nullptr) {
    invalid(argument, "device_type ", t.device_type, " is not a megamoe_device_type_t");
  }
  if (t.device_type != device_.type) {
    invalid(argument, "tensor is on ", device_text(t.device_type, t.device_id), " (device_type ", t.device_type,
            ") but the context runs on ", device_text(device_.type, device_.id), "; expected device_type ",
            device_.type, " (", device_name(device_.type), ") and device_id ", device_.id);
  }
  if (t.device_id != device_.id) {
    invalid(argument, "device_id is ", t.device_id, "; expected ", device_.id, " (the context runs on ",
            device_text(device_.type, device_.id), ")");
  }

  // Like PyTorch's is_contiguous: an empty tensor, or a dimension of extent 1, constrains nothing.
  int64_t expected_stride = 1;
  for (int32_t i = t.rank - 1; i >= 0 && numel > 0; --i) {
    if (t.shape[i] != 1 && t.strides[i] != expected_stride) {
      std::string expected = "[";
      int64_t s = 1;
      std::vector<int64_t> dense(static_cast<size_t>(t.rank));
      for (int32_t j = t.rank - 1; j >= 0; --j) {
        dense[static_cast<size_t>(j)] = s;
        s *= t.shape[j];
      }
      for (int32_t j = 0; j < t.rank; ++j) expected += (j ? ", " : "") + std::to_string(dense[static_cast<size_t>(j)]);
      std::string given = "[";
      for (int32_t j = 0; j < t.rank; ++j) given += (j ? ", " : "") + std::to_string(t.strides[j]);
      invalid(argument, "strides ", given, "] are not dense row-major for shape ", shape_text(t), "; expected ",
              expected, "] (MegaMoe takes dense tensors only)");
    }
    expected_stride *= t.shape[i];
  }

  if (numel > 0) {
    if (t.data == nullptr) invalid(argument, "data is NULL but the tensor has ", numel, " elements");
    if (reinterpret_cast<uintptr_t>(t.data) % kAlignment != 0) {
      invalid(argument, "data pointer ", t.data, " is not ", kAlignment, "-byte aligned");
    }
  }

  Tensor out;
  out.data = t.data;
  out.dtype = static_cast<megamoe_dtype_t>(t.dtype);
  out.rank = t.rank;
  for (int32_t i = 0; i < t.rank; ++i) out.shape[i] = t.shape[i];
  return out;
}

void expect_dim(const char* argument, const Tensor& t, int32_t dim, int64_t expected, const char* meaning) {
  if (t.shape[dim] != expected) {
    invalid(argument, "shape[", dim, "] is ", t.shape[dim], "; expected ", expected, " (", meaning, ")");
  }
}

void expect_multiple_of_128(const char* argument, const Tensor& t, int32_t dim, const char* meaning) {
  if (t.shape[dim] <= 0 || t.shape[dim] % 128 != 0) {
    invalid(argument, "shape[", dim, "] (", meaning, ") is ", t.shape[dim], "; it must be a positive multiple of 128");
  }
}

namespace {

// `role` says what the others are ("input", "output").
void expect_apart(const char* output_name, const Tensor& output, std::initializer_list<NamedTensor> others,
                  const char* role) {
  if (output.numel() == 0) return;
  const auto out_begin = reinterpret_cast<uintptr_t>(output.data);
  const auto out_end = out_begin + static_cast<uintptr_t>(output.bytes());
  for (const NamedTensor& other : others) {
    if (other.tensor == nullptr || other.tensor->numel() == 0) continue;
    const auto begin = reinterpret_cast<uintptr_t>(other.tensor->data);
    const auto end = begin + static_cast<uintptr_t>(other.tensor->bytes());
    if (out_begin < end && begin < out_end) invalid(output_name, "output memory overlaps ", role, " '", other.name, "'");
  }
}

}  // namespace

void expect_disjoint(const char* output_name, const Tensor& output, std::initializer_list<NamedTensor> inputs) {
  expect_apart(output_name, output, inputs, "input");
}

void expect_all_disjoint(std::initializer_list<NamedTensor> outputs, std::initializer_list<NamedTensor> inputs) {
  for (auto out = outputs.begin(); out != outputs.end(); ++out) {
    if (out->tensor == nullptr) continue;
    expect_apart(out->name, *out->tensor, inputs, "input");
    for (auto other = outputs.begin(); other != out; ++other) {
      expect_apart(out->name, *out->tensor, {*other}, "output");
    }
  }
}

}  // namespace megamoe
