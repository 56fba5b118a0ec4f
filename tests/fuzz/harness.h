// What every fuzz target shares: descriptors built from the input (well-formed, then perhaps
// mutated), memory allocated to exactly the size a descriptor claims (so ASan flags any access
// beyond it), and the invariants checked around every call:
//   - the status is a megamoe_status_t;
//   - a rejected call leaves every byte the harness owns untouched and sets a last-error message
//     that starts with the function's name;
//   - an accepted call leaves its inputs untouched and does not change the last-error message;
//   - a call with no defect the harness put in must succeed, and a call that succeeds must not have
//     been given an out-of-range index (the oracles the targets pass to Call::run);
//   - megamoe_live_object_count() is back at its starting value after each input.
// A violated invariant prints what happened and aborts, which libFuzzer reports as a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "megamoe/megamoe.h"

namespace fuzz {

[[noreturn]] void fail(const std::string& what);

// A CPU context made once per process, with one thread so each execution stays short and
// deterministic.
megamoe_context_t shared_context();

// The context argument of a call: usually `good`, sometimes NULL, a block of zeros or a live handle
// of another kind (each must be rejected without being dereferenced).
megamoe_context_t context_argument(FuzzInput& in, megamoe_context_t good, bool& is_good);

// The stream argument: NULL or an arbitrary value, which the CPU backend must ignore.
inline void* stream_argument(FuzzInput& in) { return in.byte() % 8 == 7 ? reinterpret_cast<void*>(uintptr_t{0x1000}) : nullptr; }

// Destroys a handle at scope exit; the destroy call must succeed.
template <typename H, megamoe_status_t (*Destroy)(H)>
class Owned {
 public:
  explicit Owned(H h) : h_(h) {}
  ~Owned() {
    if (Destroy(h_) != MEGAMOE_SUCCESS) fail(std::string("destroying a live handle failed: ") + megamoe_last_error_message());
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  H get() const { return h_; }

 private:
  H h_;
};

// Runs one input: `body` with the live-object count checked before and after.
int run_input(const uint8_t* data, size_t size, const std::function<void(FuzzInput&)>& body);

enum class Role { kInput, kOutput };

// Element values of an INT32/INT64 tensor, or nothing if the descriptor is not readable as one.
std::optional<std::vector<int64_t>> read_indices(const megamoe_tensor_t* desc);

// The arguments of one API call and the invariants around it.
class Call {
 public:
  Call(FuzzInput& in, const char* function) : in_(in), function_(function) {}
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // The well-formed descriptor of `dtype` and `shape`, perhaps mutated by the input (NULL
  // descriptor, rank, dtype, a dimension, strides, device, alignment, NULL data, aliasing another
  // argument of this call). Inputs hold values chosen by the input (ordinary numbers, zeros, raw bits
  // or NaN/infinities), or `index(i)` for element i when given and the final dtype is INT32/INT64;
  // outputs hold a poison pattern.
  const megamoe_tensor_t* tensor(megamoe_dtype_t dtype, const std::vector<int64_t>& shape, Role role,
                                 const std::function<int64_t(int64_t)>& index = {});
  // As tensor(), or NULL (the optional argument left out) when the input says so.
  const megamoe_tensor_t* optional_tensor(megamoe_dtype_t dtype, const std::vector<int64_t>& shape, Role role,
                                          const std::function<int64_t(int64_t)>& index = {});
  // `size` bytes of harness memory (a host buffer for buffer_read/write), or NULL if the input says so.
  void* bytes(int64_t size, Role role);

  // Whether the input changed anything from the well-formed call.
  bool mutated() const { return mutated_; }
  void note_mutation() { mutated_ = true; }

  // Calls `api`, then checks the invariants. `must_succeed`: the arguments are valid by the
  // contract; `indices_valid`: every index the call may read is in range (else success is a bug).
  megamoe_status_t run(const std::function<megamoe_status_t()>& api, bool must_succeed, bool indices_valid = true);

 private:
  struct Block {
    struct Free {
      void operator()(unsigned char* p) const { ::operator delete(p, std::align_val_t{64}); }
    };
    std::unique_ptr<unsigned char, Free> owner;
    unsigned char* begin;
    size_t size;
    Role role;
    std::vector<unsigned char> snapshot;
  };
  unsigned char* allocate(size_t size, size_t misalign, Role role);
  void fill_numbers(unsigned char* data, int32_t dtype, int64_t count);
  void mutate(megamoe_tensor_t& t, int64_t& misalign, int& alias);
  void back(megamoe_tensor_t& t, int64_t misalign, int alias, Role role,
            const std::function<int64_t(int64_t)>& index);

  FuzzInput& in_;
  const char* function_;
  bool mutated_ = false;
  std::vector<std::unique_ptr<Block>> blocks_;
  std::vector<std::unique_ptr<megamoe_tensor_t>> descs_;
};

// Index generators shared by the targets: mostly valid values, sometimes the boundary values a
// caller gets wrong (E, -2, INT32/INT64 extremes).
int64_t expert_index(FuzzInput& in, int64_t experts);

// shape[i] of a descriptor as finally passed (a mutation may have changed it consistently across
// arguments, which the library rightly accepts), or `fallback` when there is no such dimension.
inline int64_t dim_of(const megamoe_tensor_t* t, int32_t i, int64_t fallback) {
  return t != nullptr && i < t->rank && i < MEGAMOE_MAX_RANK ? t->shape[i] : fallback;
}

// Whether a descriptor describes no elements (a call whose output is empty reads no index).
inline bool no_elements(const megamoe_tensor_t* t) {
  if (t == nullptr || t->rank < 1 || t->rank > MEGAMOE_MAX_RANK) return false;
  for (int32_t i = 0; i < t->rank; ++i) {
    if (t->shape[i] == 0) return true;
  }
  return false;
}

// The contract's range checks, written independently of the library: what an accepted call may
// have been given.
bool experts_in_range(const std::vector<int64_t>& v, int64_t experts, int64_t count);

}  // namespace fuzz
