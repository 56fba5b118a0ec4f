// Argument validation shared by all entry points. Every failure throws through invalid()
// (core/error.h): "argument '<name>': <what is wrong>; <what was expected>", before any work is
// enqueued, so a rejected call writes nothing.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

#include "core/error.h"
#include "core/int_math.h"
#include "core/limits.h"
#include "core/tensor.h"

namespace megamoe {

template <typename T>
T& require_out(T* out, const char* argument) {
  if (out == nullptr) invalid(argument, "output pointer is NULL");
  return *out;
}

// Validates descriptors against the device of the context that will run the call.
class TensorChecker {
 public:
  explicit TensorChecker(Device device) : device_(device) {}

  // `layout` names the expected dimensions, e.g. "[M, K]"; its rank is the number of names.
  Tensor tensor(const char* argument, const megamoe_tensor_t* desc, std::initializer_list<megamoe_dtype_t> dtypes,
                const char* layout) const;
  // As tensor(), accepting either of two layouts of different rank, e.g. "[N, K]" or "[E, N, K]".
  Tensor tensor(const char* argument, const megamoe_tensor_t* desc, std::initializer_list<megamoe_dtype_t> dtypes,
                const char* layout, const char* other_layout) const;
  std::optional<Tensor> optional_tensor(const char* argument, const megamoe_tensor_t* desc,
                                        std::initializer_list<megamoe_dtype_t> dtypes, const char* layout) const;

 private:
  Tensor checked(const char* argument, const megamoe_tensor_t* desc, std::initializer_list<megamoe_dtype_t> dtypes,
                 const char* layout, const char* other_layout) const;
  Device device_;
};

// shape[dim] of `t` must equal `expected`; `meaning` says where the number comes from
// ("K, the columns of 'a'").
void expect_dim(const char* argument, const Tensor& t, int32_t dim, int64_t expected, const char* meaning);
// shape[dim] must be a positive multiple of 128.
void expect_multiple_of_128(const char* argument, const Tensor& t, int32_t dim, const char* meaning);
// An input an output must not overlap; an absent optional input is skipped.
struct NamedTensor {
  NamedTensor(const char* n, const Tensor& t) : name(n), tensor(&t) {}
  NamedTensor(const char* n, const std::optional<Tensor>& t) : name(n), tensor(t ? &*t : nullptr) {}
  const char* name;
  const Tensor* tensor;
};

// Output memory must not overlap any of the inputs.
void expect_disjoint(const char* output_name, const Tensor& output, std::initializer_list<NamedTensor> inputs);
// Each output must overlap neither an input nor another output.
void expect_all_disjoint(std::initializer_list<NamedTensor> outputs, std::initializer_list<NamedTensor> inputs);


}  // namespace megamoe
