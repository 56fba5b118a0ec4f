// The interface every backend (CPU reference, CUDA SM90) implements. The C ABI layer validates
// all descriptors first (abi/), so a backend receives well-formed tensors on its own device and
// only checks what needs the data itself (index ranges that are cheap to read on the host).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "core/ep_format.h"
#include "core/error.h"
#include "core/tensor.h"
#include "megamoe/megamoe.h"

namespace megamoe {

// FP8 data with its float32 block scales.
struct ScaledTensor {
  Tensor data;
  Tensor scales;
};

struct ActivationSpec {
  float alpha = 1.0f;
  float beta = 0.0f;
  float clamp = 0.0f;  // > 0 enables gate <= c and -c <= up <= c
};

struct MoeLayerSpec {
  int32_t num_experts = 0;
  int32_t top_k = 0;
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t max_tokens = 0;
  ActivationSpec activation;
  float routed_scaling_factor = 1.0f;
  bool w13_interleaved = false;
  bool expert_specialization_up = false;  // CUDA only: tile height per expert on the device
  bool expert_specialization_down = false;
  megamoe_progress_fn progress = nullptr;
  void* progress_user_data = nullptr;
};

// Weights as the caller gave them: FP8 with scales, or BF16/FP32 without.
struct MoeWeights {
  Tensor w13;
  std::optional<Tensor> w13_scales;
  Tensor w2;
  std::optional<Tensor> w2_scales;
};

struct MoeForwardArgs {
  Tensor x;
  std::optional<Tensor> x_scales;  // present iff x is FP8
  Tensor topk_idx;
  Tensor topk_weights;
  // BF16 (the C ABI), or FP32: the float32 sum over the token's slot rows before its rounding, which
  // expert parallelism adds up across ranks (docs/EP.md). Only backends that pass
  // check_expert_parallel() are given FP32.
  Tensor y;
  std::optional<Tensor> expert_counts;
  std::optional<Tensor> num_tokens;
};

struct RoutedPlanSpec {
  int64_t max_tokens = 0;
  int32_t top_k = 0;
  int32_t num_experts = 0;
  int64_t n = 0;
  int64_t k = 0;
  uint32_t flags = 0;
};

struct RoutedGemmArgs {
  ScaledTensor a;
  ScaledTensor b;
  Tensor topk_idx;
  std::optional<Tensor> topk_weights;
  std::optional<Tensor> num_tokens;
  Tensor d;
};

class MoeLayer {
 public:
  virtual ~MoeLayer() = default;
  virtual int64_t workspace_bytes() const = 0;
  virtual void forward(const MoeForwardArgs& args, void* stream) = 0;
};

class RoutedPlan {
 public:
  virtual ~RoutedPlan() = default;
  virtual void run(const RoutedGemmArgs& args, void* stream) = 0;
};

// ---- Expert parallelism (docs/EP.md): the backend primitives over the regions of core/ep_format.h.

// Orders work across streams and times it (a cudaEvent_t on CUDA). The CPU backend runs every call
// synchronously, so there record() notes the host clock and wait() has nothing to wait for.
class StreamEvent {
 public:
  virtual ~StreamEvent() = default;
  virtual void record(void* stream) = 0;
  // Work enqueued on `stream` after this call starts after the work before the last record().
  virtual void wait(void* stream) = 0;
  // Milliseconds from `start`'s last record() to this event's last record(), once both are done.
  virtual double elapsed_ms(StreamEvent& start) = 0;
};

// x [T, H] FP8 with scales, topk_idx [T, k] INT32/INT64 holding GLOBAL experts (-1 dropped),
// topk_weights [T, k] -> the W dispatch regions of `send` (headers included) and pos [T, W], the
// record index of token t in region p or -1. T = 0 writes the W headers only. The CPU backend
// rejects an expert outside [-1, E) before writing anything.
struct EpPackArgs {
  EpGeometry geometry;
  const int32_t* rank_begin = nullptr;  // [W + 1] in backend memory (ep_owner)
  ScaledTensor x;
  Tensor topk_idx;
  Tensor topk_weights;
  void* send = nullptr;
  int32_t* pos = nullptr;
};

// The W received dispatch regions -> one row per record, source rank by source rank: x [R_max, H]
// with scales, topk_idx [R_max, k] INT32 (local experts, -1 for the other slots), topk_weights
// [R_max, k], num_tokens INT32 [1] = R, and source_offsets [W + 1] (records of source s are rows
// [o_s, o_{s+1})). Rows >= R are not written.
struct EpUnpackArgs {
  EpGeometry geometry;
  const void* recv = nullptr;
  ScaledTensor x;
  Tensor topk_idx;
  Tensor topk_weights;
  Tensor num_tokens;
  int32_t* source_offsets = nullptr;
};

// The W received dispatch regions -> one row per (record, local slot) sorted by local expert, stable in
// (source rank, token, slot): x [R_max * k, H] with scales, expert_offsets INT32 [E_local + 1]; and for
// the combine: topk_weights [R_max, k] FP32 and slot_rows [R_max, k] (the row of each slot, -1 where the
// slot is on another rank), source_offsets [W + 1] as for EpUnpackArgs. Rows past the last offset are
// not written.
struct EpUnpackExpandedArgs {
  EpGeometry geometry;
  int32_t num_local_experts = 0;
  const void* recv = nullptr;
  ScaledTensor x;
  Tensor expert_offsets;
  float* topk_weights = nullptr;
  int32_t* slot_rows = nullptr;
  int32_t* source_offsets = nullptr;
};

// This rank's results -> the W return regions of `send`: region s gets, in record order, the float32 row
// of every record received from rank s. partial holds one row per record ([R_max, H]), or with
// slot_rows one row per expanded row ([R_max * k, H], unweighted): then a record's row is
// fmaf(w_j, partial[row_j], sum) over its local slots j in slot order, from +0. partial is BF16 or FP32.
// A nonzero status (this rank failed) goes into every header and no row is written.
struct EpReturnArgs {
  EpGeometry geometry;
  int32_t status = MEGAMOE_SUCCESS;
  Tensor partial;
  const int32_t* source_offsets = nullptr;
  const int32_t* slot_rows = nullptr;
  const float* topk_weights = nullptr;
  void* send = nullptr;
};

// The W received return regions -> y [T, H] BF16: y[t] = bf16(sum over ranks p in order, where
// pos[t, p] >= 0, of region p's row pos[t, p]), float32 from +0; tokens on no rank get +0. A region with
// a nonzero status that this rank sent records to fails the call (on the CPU before y is written).
struct EpCombineArgs {
  EpGeometry geometry;
  const int32_t* pos = nullptr;
  const void* recv = nullptr;
  Tensor y;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual megamoe_backend_t kind() const = 0;
  virtual Device device() const = 0;
  virtual void set_num_threads(int32_t num_threads) = 0;
  virtual void device_info(megamoe_device_info_t& info) const = 0;
  virtual void synchronize(void* stream) = 0;

  virtual void* allocate(int64_t bytes) = 0;
  virtual void deallocate(void* data) noexcept = 0;
  virtual void write(void* device_dst, const void* host_src, int64_t bytes, void* stream) = 0;
  virtual void read(void* host_dst, const void* device_src, int64_t bytes, void* stream) = 0;
  virtual void fill(void* device_dst, uint8_t value, int64_t bytes, void* stream) = 0;

  // nonfinite_rows: INT32 [1], incremented (wrapping) by the rows of x holding a NaN or an infinity.
  virtual void quantize_activations(const Tensor& x, const ScaledTensor& out, bool ue8m0,
                                    const std::optional<Tensor>& nonfinite_rows, void* stream) = 0;
  virtual void dequantize_activations(const ScaledTensor& q, const Tensor& out, void* stream) = 0;
  virtual void quantize_weights(const Tensor& w, const ScaledTensor& out, bool ue8m0, void* stream) = 0;
  virtual void dequantize_weights(const ScaledTensor& q, const Tensor& out, void* stream) = 0;

  virtual void gemm_dense(const ScaledTensor& a, const ScaledTensor& b, const Tensor& d, void* stream) = 0;
  virtual void gemm_contiguous(const ScaledTensor& a, const ScaledTensor& b, const Tensor& m_indices,
                               const Tensor& d, void* stream) = 0;
  virtual void gemm_offsets(const ScaledTensor& a, const ScaledTensor& b, const Tensor& offsets, const Tensor& d,
                            void* stream) = 0;
  virtual void gemm_masked(const ScaledTensor& a, const ScaledTensor& b, const Tensor& masked_m, int64_t expected_m,
                           const Tensor& d, void* stream) = 0;
  virtual std::unique_ptr<RoutedPlan> create_routed_plan(const RoutedPlanSpec& spec) = 0;

  virtual void interleave_gate_up(const Tensor& w, const Tensor& out, bool inverse, void* stream) = 0;

  virtual std::unique_ptr<MoeLayer> create_moe_layer(const MoeLayerSpec& spec, const MoeWeights& weights,
                                                     void* stream) = 0;

  // Expert parallelism. A backend that supports it overrides every function below, and its MoE layers
  // write FP32 y (MoeForwardArgs); the defaults say it does not, so a backend without them still builds.
  // Throws unless this backend implements expert parallelism (checked when an EP object is created).
  virtual void check_expert_parallel() const { not_implemented("expert parallelism"); }
  // Device-to-device copy enqueued on `stream` (memory of any backend of the same kind).
  virtual void copy(void* /*device_dst*/, const void* /*device_src*/, int64_t /*bytes*/, void* /*stream*/) {
    not_implemented("copy");
  }
  // `timing`: the event will be passed to elapsed_ms (CUDA events without timing are cheaper).
  virtual std::unique_ptr<StreamEvent> create_event(bool /*timing*/) { not_implemented("stream events"); }
  virtual void ep_pack(const EpPackArgs& /*args*/, void* /*stream*/) { not_implemented("the expert-parallel pack"); }
  virtual void ep_unpack(const EpUnpackArgs& /*args*/, void* /*stream*/) {
    not_implemented("the expert-parallel unpack");
  }
  virtual void ep_unpack_expanded(const EpUnpackExpandedArgs& /*args*/, void* /*stream*/) {
    not_implemented("the expanded expert-parallel unpack");
  }
  virtual void ep_return(const EpReturnArgs& /*args*/, void* /*stream*/) {
    not_implemented("the expert-parallel return");
  }
  virtual void ep_combine(const EpCombineArgs& /*args*/, void* /*stream*/) {
    not_implemented("the expert-parallel combine");
  }

 private:
  [[noreturn]] static void not_implemented(const char* what) {
    fail(MEGAMOE_ERROR_UNSUPPORTED, what, " is not implemented by this backend yet");
  }
};

std::shared_ptr<Backend> make_cpu_backend();

// Throws Error(MEGAMOE_ERROR_BACKEND_UNAVAILABLE) with the reason when CUDA cannot be used.
std::shared_ptr<Backend> make_cuda_backend(int32_t device_id);
void check_cuda_available(int32_t device_id);

}  // namespace megamoe
