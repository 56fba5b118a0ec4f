/*
 * MegaMoe: FP8 (E4M3) block-scaled Mixture-of-Experts kernels for NVIDIA Hopper, with an exact CPU
 * reference backend. This is the whole public C API.
 *
 * Conventions (see docs/API.md and docs/NUMERICS.md):
 *  - Every function returns megamoe_status_t. On failure nothing was written to any output and
 *    megamoe_last_error_message() (thread-local) names the function, the argument and what was
 *    expected versus what was given.
 *  - Handles are opaque; each *_create has a matching *_destroy, which accepts NULL. A destroyed,
 *    forged or wrong-kind handle is rejected (MEGAMOE_ERROR_INVALID_ARGUMENT): handle values are
 *    keys of a registry of live objects, never reused (docs/API.md).
 *  - Tensors are described by megamoe_tensor_t (DLPack-like). Descriptors are read, never kept.
 *  - Work is enqueued on the stream passed explicitly (a cudaStream_t as void*, NULL = the legacy
 *    default stream); the CPU backend ignores it and runs synchronously.
 *  - No C++ exception ever crosses this boundary.
 */
#ifndef MEGAMOE_MEGAMOE_H_
#define MEGAMOE_MEGAMOE_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#if defined(MEGAMOE_BUILDING_LIBRARY)
#define MEGAMOE_API __declspec(dllexport)
#else
#define MEGAMOE_API __declspec(dllimport)
#endif
#else
#define MEGAMOE_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------------------------- */
#define MEGAMOE_VERSION_MAJOR 0
#define MEGAMOE_VERSION_MINOR 1
#define MEGAMOE_VERSION_PATCH 0
/* major * 10000 + minor * 100 + patch; compare with megamoe_version() at load time. */
#define MEGAMOE_VERSION (MEGAMOE_VERSION_MAJOR * 10000 + MEGAMOE_VERSION_MINOR * 100 + MEGAMOE_VERSION_PATCH)

/* The version the loaded library was built as, encoded like MEGAMOE_VERSION. */
MEGAMOE_API int32_t megamoe_version(void);
/* "major.minor.patch"; static storage. */
MEGAMOE_API const char* megamoe_version_string(void);
/* "key=value;..." describing the build (compiler, CUDA, CUTLASS, architectures); static storage. */
MEGAMOE_API const char* megamoe_build_info(void);

/* ---------------------------------------------------------------------------------------------
 * Status and errors
 * ------------------------------------------------------------------------------------------- */
typedef enum megamoe_status {
  MEGAMOE_SUCCESS = 0,
  /* A handle, pointer, descriptor or value is wrong (dtype, rank, shape, stride, alignment, range). */
  MEGAMOE_ERROR_INVALID_ARGUMENT = 1,
  /* The request is well formed but this backend or build does not support it. */
  MEGAMOE_ERROR_UNSUPPORTED = 2,
  /* The backend asked for is not usable here: built without CUDA, no driver, no SM90 device. */
  MEGAMOE_ERROR_BACKEND_UNAVAILABLE = 3,
  MEGAMOE_ERROR_OUT_OF_MEMORY = 4,
  /* The CUDA runtime or driver reported an error (the message carries its name). */
  MEGAMOE_ERROR_DEVICE = 5,
  /* A progress callback asked to stop; nothing was created. */
  MEGAMOE_ERROR_CANCELLED = 6,
  /* A bug in MegaMoe: please report the message. */
  MEGAMOE_ERROR_INTERNAL = 7
} megamoe_status_t;

/* Constant name of a status ("MEGAMOE_ERROR_INVALID_ARGUMENT"); "unknown status" otherwise. */
MEGAMOE_API const char* megamoe_status_string(megamoe_status_t status);
/* Message of the last failed call on this thread ("" if none). Valid until the next failing call
 * on this thread. Successful calls do not clear it. */
MEGAMOE_API const char* megamoe_last_error_message(void);
/* Number of live MegaMoe objects (contexts, buffers, layers, routed plans, EP communicators,
 * dispatchers and layers) in this process; for leak tests. */
MEGAMOE_API int64_t megamoe_live_object_count(void);
/* sizeof() of a public struct as this library was compiled ("megamoe_tensor_t",
 * "megamoe_device_info_t", "megamoe_moe_config_t", "megamoe_ep_config_t"); -1 for any other name.
 * Lets bindings check their declarations against the loaded library. */
MEGAMOE_API int64_t megamoe_struct_size(const char* type_name);

/* ---------------------------------------------------------------------------------------------
 * Tensors
 * ------------------------------------------------------------------------------------------- */
typedef enum megamoe_dtype {
  MEGAMOE_DTYPE_FP8_E4M3 = 1, /* OCP E4M3FN: bias 7, max 448, no infinity, NaN = S.1111.111 */
  MEGAMOE_DTYPE_BF16 = 2,
  MEGAMOE_DTYPE_FP32 = 3,
  MEGAMOE_DTYPE_INT32 = 4,
  MEGAMOE_DTYPE_INT64 = 5
} megamoe_dtype_t;

/* Values match DLPack's DLDeviceType. */
typedef enum megamoe_device_type {
  MEGAMOE_DEVICE_CPU = 1,
  MEGAMOE_DEVICE_CUDA = 2
} megamoe_device_type_t;

#define MEGAMOE_MAX_RANK 4

/* A view of memory the caller owns. Shapes and strides count elements; strides[i] is the distance
 * between consecutive indices of dimension i. Every tensor must be dense row-major (the stride of
 * a dimension of extent 1 is not looked at) and its data 16-byte aligned; data may be NULL only
 * when the tensor has no elements. No extent may exceed 2^48 (even in a tensor with no elements),
 * nor may the number of elements; device_type and device_id must be the context's (the CPU is
 * device 0). */
typedef struct megamoe_tensor {
  void* data;
  int32_t device_type; /* megamoe_device_type_t */
  int32_t device_id;   /* CUDA ordinal; 0 for the CPU */
  int32_t dtype;       /* megamoe_dtype_t */
  int32_t rank;        /* 1..MEGAMOE_MAX_RANK */
  int64_t shape[MEGAMOE_MAX_RANK];
  int64_t strides[MEGAMOE_MAX_RANK];
} megamoe_tensor_t;

/* ---------------------------------------------------------------------------------------------
 * Contexts
 * ------------------------------------------------------------------------------------------- */
typedef enum megamoe_backend {
  /* CUDA on device_id if it is usable there; otherwise, whatever the reason (no CUDA build, no
   * driver, no such device, not SM90), the CPU backend, silently: megamoe_context_get_backend says
   * which one was chosen. device_id must still be >= 0. */
  MEGAMOE_BACKEND_BEST = 0,
  MEGAMOE_BACKEND_CPU = 1,
  MEGAMOE_BACKEND_CUDA = 2
} megamoe_backend_t;

typedef struct megamoe_context* megamoe_context_t;

/* MEGAMOE_SUCCESS if the backend can be used here (device_id for CUDA); otherwise
 * MEGAMOE_ERROR_BACKEND_UNAVAILABLE with the reason in megamoe_last_error_message(). */
MEGAMOE_API megamoe_status_t megamoe_backend_available(megamoe_backend_t backend, int32_t device_id);

/* A context binds a backend (and, for CUDA, a device). It may be used from several threads at
 * once (docs/API.md). Objects created from a context keep it alive: destroying a context
 * with live buffers or layers only drops the caller's reference. */
MEGAMOE_API megamoe_status_t megamoe_context_create(megamoe_backend_t backend, int32_t device_id,
                                                    megamoe_context_t* out_context);
MEGAMOE_API megamoe_status_t megamoe_context_destroy(megamoe_context_t context);
/* The backend actually in use (CPU or CUDA, never BEST). */
MEGAMOE_API megamoe_status_t megamoe_context_get_backend(megamoe_context_t context,
                                                         megamoe_backend_t* out_backend);
/* CPU backend worker threads, 0 (one per hardware thread) to 4096; other backends accept and ignore
 * it. */
MEGAMOE_API megamoe_status_t megamoe_context_set_num_threads(megamoe_context_t context, int32_t num_threads);

typedef struct megamoe_device_info {
  uint32_t struct_size;     /* set to sizeof(megamoe_device_info_t) before the call */
  int32_t backend;          /* megamoe_backend_t */
  int32_t device_id;
  int32_t compute_capability_major; /* 0 on the CPU */
  int32_t compute_capability_minor;
  int32_t multiprocessor_count;     /* SMs, or worker threads on the CPU */
  int32_t driver_version;           /* CUDA driver (e.g. 13000); 0 on the CPU */
  int32_t runtime_version;          /* CUDA runtime linked in; 0 on the CPU */
  int64_t total_memory_bytes;
  int64_t l2_cache_bytes;
  char name[256];
} megamoe_device_info_t;

MEGAMOE_API megamoe_status_t megamoe_context_get_device_info(megamoe_context_t context,
                                                             megamoe_device_info_t* out_info);

/* Waits for the work enqueued on `stream` (no-op on the CPU). */
MEGAMOE_API megamoe_status_t megamoe_context_synchronize(megamoe_context_t context, void* stream);

/* ---------------------------------------------------------------------------------------------
 * Buffers: memory in the context's device (64-byte aligned host memory on the CPU backend).
 * ------------------------------------------------------------------------------------------- */
typedef struct megamoe_buffer* megamoe_buffer_t;

MEGAMOE_API megamoe_status_t megamoe_buffer_create(megamoe_context_t context, int64_t size_bytes,
                                                   megamoe_buffer_t* out_buffer);
MEGAMOE_API megamoe_status_t megamoe_buffer_destroy(megamoe_buffer_t buffer);
/* Device pointer (or host pointer on the CPU backend), device type and id of the buffer. */
MEGAMOE_API megamoe_status_t megamoe_buffer_get_data(megamoe_buffer_t buffer, void** out_data,
                                                     int32_t* out_device_type, int32_t* out_device_id);
MEGAMOE_API megamoe_status_t megamoe_buffer_get_size(megamoe_buffer_t buffer, int64_t* out_size_bytes);
/* Copies between host memory and [offset, offset + size) of the buffer. Synchronous with respect
 * to the host memory: the call returns once `host` may be reused or read. [host, host + size) must
 * not overlap the buffer's own memory (megamoe_buffer_get_data .. + its size), on any backend:
 * MEGAMOE_ERROR_INVALID_ARGUMENT naming both ranges, nothing copied. */
MEGAMOE_API megamoe_status_t megamoe_buffer_write(megamoe_buffer_t buffer, int64_t offset_bytes,
                                                  const void* host, int64_t size_bytes, void* stream);
MEGAMOE_API megamoe_status_t megamoe_buffer_read(megamoe_buffer_t buffer, int64_t offset_bytes, void* host,
                                                 int64_t size_bytes, void* stream);
/* Sets every byte of [offset, offset + size) to `value` (enqueued on `stream`). */
MEGAMOE_API megamoe_status_t megamoe_buffer_fill(megamoe_buffer_t buffer, int64_t offset_bytes,
                                                 int64_t size_bytes, uint8_t value, void* stream);

/* ---------------------------------------------------------------------------------------------
 * Operations. Shapes: M rows (tokens), N output features, K reduction; E experts.
 * All tensors must live on the context's device.
 * ------------------------------------------------------------------------------------------- */

/* Flags for quantization. */
#define MEGAMOE_QUANT_DEFAULT 0u
/* Round each scale up to a power of two ("UE8M0"), as DeepGEMM's UE8M0 layouts expect. */
#define MEGAMOE_QUANT_UE8M0_SCALES 1u

/* 1. Activations, 1x128 groups along K: x [M, K] BF16 or FP32 -> q [M, K] FP8,
 *    scales [M, ceil(K/128)] FP32 with sf = max(amax, 1e-4) / 448 and q = fp8(x * (1 / sf)). */
MEGAMOE_API megamoe_status_t megamoe_quantize_activations(megamoe_context_t context, const megamoe_tensor_t* x,
                                                          const megamoe_tensor_t* q,
                                                          const megamoe_tensor_t* scales, uint32_t flags,
                                                          void* stream);
/*    The same, and counts non-finite input without a host synchronization (for servers): nonfinite_rows
 *    is INT32 [1] on the context's device, incremented (wrapping modulo 2^32, like a 32-bit atomic add)
 *    by the number of rows of x that hold at least one NaN or +-Inf; q and scales are written exactly
 *    as megamoe_quantize_activations writes them (docs/NUMERICS.md says what non-finite input becomes).
 *    nonfinite_rows NULL: megamoe_quantize_activations. */
MEGAMOE_API megamoe_status_t megamoe_quantize_activations_checked(megamoe_context_t context,
                                                                  const megamoe_tensor_t* x,
                                                                  const megamoe_tensor_t* q,
                                                                  const megamoe_tensor_t* scales, uint32_t flags,
                                                                  const megamoe_tensor_t* nonfinite_rows,
                                                                  void* stream);
/*    q [M, K] FP8 + scales [M, ceil(K/128)] -> out [M, K] BF16 or FP32 (out = q * sf, rounded once). */
MEGAMOE_API megamoe_status_t megamoe_dequantize_activations(megamoe_context_t context, const megamoe_tensor_t* q,
                                                            const megamoe_tensor_t* scales,
                                                            const megamoe_tensor_t* out, void* stream);

/* 2. Weights, 128x128 blocks: w [E, N, K] (or [N, K]) BF16 or FP32 -> q FP8 of the same shape,
 *    scales [E, ceil(N/128), ceil(K/128)] (or [ceil(N/128), ceil(K/128)]) FP32. */
MEGAMOE_API megamoe_status_t megamoe_quantize_weights(megamoe_context_t context, const megamoe_tensor_t* w,
                                                      const megamoe_tensor_t* q, const megamoe_tensor_t* scales,
                                                      uint32_t flags, void* stream);
MEGAMOE_API megamoe_status_t megamoe_dequantize_weights(megamoe_context_t context, const megamoe_tensor_t* q,
                                                        const megamoe_tensor_t* scales,
                                                        const megamoe_tensor_t* out, void* stream);

/* 3. Dense: d [M, N] BF16 = A . B^T with a [M, K] FP8, a_scales [M, K/128], b [N, K] FP8,
 *    b_scales [N/128, K/128]. N and K multiples of 128; M >= 0. */
MEGAMOE_API megamoe_status_t megamoe_gemm_dense(megamoe_context_t context, const megamoe_tensor_t* a,
                                                const megamoe_tensor_t* a_scales, const megamoe_tensor_t* b,
                                                const megamoe_tensor_t* b_scales, const megamoe_tensor_t* d,
                                                void* stream);

/* 4a. Grouped, contiguous layout: a [M, K], b [E, N, K], b_scales [E, N/128, K/128],
 *     m_indices INT32 [M] (row -> expert, -1 = padding row). Each aligned block of 128 rows holds
 *     rows of at most one expert. d [M, N]; padding rows are written as zeros. */
MEGAMOE_API megamoe_status_t megamoe_gemm_grouped_contiguous(megamoe_context_t context, const megamoe_tensor_t* a,
                                                             const megamoe_tensor_t* a_scales,
                                                             const megamoe_tensor_t* b,
                                                             const megamoe_tensor_t* b_scales,
                                                             const megamoe_tensor_t* m_indices,
                                                             const megamoe_tensor_t* d, void* stream);
/* 4b. Grouped, contiguous layout by offsets: expert e owns rows [offsets[e], offsets[e+1]);
 *     offsets INT32 or INT64 [E + 1], non-decreasing, offsets[0] >= 0, offsets[E] <= M. Rows outside
 *     every segment are written as zeros. Segments need no alignment. */
MEGAMOE_API megamoe_status_t megamoe_gemm_grouped_offsets(megamoe_context_t context, const megamoe_tensor_t* a,
                                                          const megamoe_tensor_t* a_scales,
                                                          const megamoe_tensor_t* b,
                                                          const megamoe_tensor_t* b_scales,
                                                          const megamoe_tensor_t* offsets,
                                                          const megamoe_tensor_t* d, void* stream);

/* 5. Grouped, masked layout: a [E, max_m, K], a_scales [E, max_m, K/128], masked_m INT32 [E] in
 *    device memory (0 <= masked_m[e] <= max_m). d [E, max_m, N]: rows m < masked_m[e] are written,
 *    the others are left untouched. expected_m is a hint (typical masked_m) that only steers the
 *    kernel choice; 0 = unknown. */
MEGAMOE_API megamoe_status_t megamoe_gemm_grouped_masked(megamoe_context_t context, const megamoe_tensor_t* a,
                                                         const megamoe_tensor_t* a_scales,
                                                         const megamoe_tensor_t* b,
                                                         const megamoe_tensor_t* b_scales,
                                                         const megamoe_tensor_t* masked_m, int64_t expected_m,
                                                         const megamoe_tensor_t* d, void* stream);

/* 6. Grouped, routed layout: unsorted tokens, routing taken as given. A routed plan owns the
 *    fixed workspace for routing metadata, sized at creation, so forward calls allocate nothing,
 *    never synchronize with the host and can be captured in a CUDA graph. */
typedef struct megamoe_routed_plan* megamoe_routed_plan_t;

#define MEGAMOE_PLAN_DEFAULT 0u
/* Choose the tile shape per expert from its token count, on the device (CUDA backend). */
#define MEGAMOE_PLAN_EXPERT_SPECIALIZATION 1u

/* max_tokens 1 to 2^31; top_k 1 to 16; num_experts 1 to 1024; n and k positive multiples of 128.
 * top_k may exceed num_experts, and a token may name the same expert in several slots: each slot is
 * computed on its own (its own row of d, with its own weight). */
MEGAMOE_API megamoe_status_t megamoe_routed_plan_create(megamoe_context_t context, int64_t max_tokens,
                                                        int32_t top_k, int32_t num_experts, int64_t n,
                                                        int64_t k, uint32_t flags,
                                                        megamoe_routed_plan_t* out_plan);
MEGAMOE_API megamoe_status_t megamoe_routed_plan_destroy(megamoe_routed_plan_t plan);

/*    a [T, K] FP8, a_scales [T, K/128], b [E, N, K], b_scales [E, N/128, K/128],
 *    topk_idx [T, top_k] INT32 or INT64 (-1 = dropped slot), topk_weights [T, top_k] FP32 or NULL,
 *    d [T, top_k, N] BF16: d[t, j] = w[t, j] * (A[t] . B[topk_idx[t, j]]^T), zeros for dropped slots.
 *    num_tokens: NULL, or INT32 [1] in device memory holding the number of valid tokens
 *    (<= T); rows of later tokens are not read and their outputs not written. T <= max_tokens. */
MEGAMOE_API megamoe_status_t megamoe_gemm_routed(megamoe_routed_plan_t plan, const megamoe_tensor_t* a,
                                                 const megamoe_tensor_t* a_scales, const megamoe_tensor_t* b,
                                                 const megamoe_tensor_t* b_scales, const megamoe_tensor_t* topk_idx,
                                                 const megamoe_tensor_t* topk_weights,
                                                 const megamoe_tensor_t* num_tokens, const megamoe_tensor_t* d,
                                                 void* stream);

/* 7. Gate/up interleave of w13 [E, 2I, H] (or [2I, H]), any dtype, I a multiple of 8:
 *    out rows = gate 0-7, up 0-7, gate 8-15, up 8-15, ...; `inverse` 1 undoes it (0: interleave; any
 *    other value is MEGAMOE_ERROR_INVALID_ARGUMENT). Block scales are unchanged by this transform. out
 *    must not overlap w. */
MEGAMOE_API megamoe_status_t megamoe_interleave_gate_up(megamoe_context_t context, const megamoe_tensor_t* w,
                                                        const megamoe_tensor_t* out, int32_t inverse,
                                                        void* stream);

/* ---------------------------------------------------------------------------------------------
 * 8. MoE layer: y[t] = sum_j w[t,j] * rsf * W2[e] . requant(act(W13[e] . quant(x[t]))),
 *    act(g, u) = g * sigmoid(alpha * g) * (u + beta) with optional clamp g <= c, -c <= u <= c.
 *    Exact order of operations: docs/NUMERICS.md.
 * ------------------------------------------------------------------------------------------- */
typedef struct megamoe_moe_layer* megamoe_moe_layer_t;

/* Called during long work (weight preparation) with done <= total; return nonzero to cancel. */
typedef int32_t (*megamoe_progress_fn)(void* user_data, int64_t done, int64_t total);

#define MEGAMOE_MOE_DEFAULT 0u
/* w13 rows are already gate/up interleaved (megamoe_interleave_gate_up). */
#define MEGAMOE_MOE_W13_INTERLEAVED 1u
/* Expert specialization of the up- / down-projection (CUDA backend; the CPU backend accepts and
 * ignores them): experts with at most 64 slots run 64-row tiles whose columns are spread over the
 * kernel's warpgroups, chosen per expert on the device. */
#define MEGAMOE_MOE_EXPERT_SPECIALIZATION_UP 2u
#define MEGAMOE_MOE_EXPERT_SPECIALIZATION_DOWN 4u

typedef struct megamoe_moe_config {
  uint32_t struct_size;  /* sizeof(megamoe_moe_config_t) */
  uint32_t flags;        /* MEGAMOE_MOE_* */
  int32_t num_experts;   /* E, 1..1024 */
  int32_t top_k;         /* 1..16; may exceed E (see megamoe_moe_layer_forward on duplicates) */
  int64_t hidden;        /* H, multiple of 128 */
  int64_t intermediate;  /* I, multiple of 128 */
  int64_t max_tokens;    /* largest T a forward may pass, 1 to 2^31 */
  float activation_alpha;      /* 1 for SwiGLU (DeepSeek), 1.702 for GPT-OSS */
  float activation_beta;       /* 0 for SwiGLU, 1 for GPT-OSS */
  float activation_clamp;      /* c > 0 enables the clamp; 0 disables it */
  float routed_scaling_factor; /* multiplies every top-k weight (2.5 for DeepSeek-V3; else 1) */
  megamoe_progress_fn progress;  /* optional */
  void* progress_user_data;
} megamoe_moe_config_t;

/* Creates a layer, copying and preparing the weights (the caller's tensors may be freed after the
 * call). w13 [E, 2I, H] = [gate; up] per expert and w2 [E, H, I] are either FP8 with FP32 block
 * scales w13_scales [E, 2I/128, H/128], w2_scales [E, H/128, I/128], or BF16/FP32 with NULL scales
 * (then quantized by the library per 128x128 block). */
MEGAMOE_API megamoe_status_t megamoe_moe_layer_create(megamoe_context_t context, const megamoe_moe_config_t* config,
                                                      const megamoe_tensor_t* w13,
                                                      const megamoe_tensor_t* w13_scales,
                                                      const megamoe_tensor_t* w2, const megamoe_tensor_t* w2_scales,
                                                      void* stream, megamoe_moe_layer_t* out_layer);
MEGAMOE_API megamoe_status_t megamoe_moe_layer_destroy(megamoe_moe_layer_t layer);
/* Bytes of workspace the layer holds (fixed at creation, docs/API.md gives the formula). */
MEGAMOE_API megamoe_status_t megamoe_moe_layer_get_workspace_size(megamoe_moe_layer_t layer,
                                                                  int64_t* out_bytes);

/* x [T, H] BF16, or FP8 with x_scales [T, H/128] FP32 (x_scales NULL for BF16);
 * topk_idx [T, top_k] INT32 or INT64 (-1 = dropped); topk_weights [T, top_k] FP32; y [T, H] BF16.
 * A token may name the same expert in several slots: each slot is its own term of y[t], with its
 * own weight (and counts in expert_counts), so a duplicate adds that expert's output twice.
 * expert_counts: NULL or INT32 [E], incremented by the number of slots routed to each expert.
 * num_tokens: NULL or INT32 [1] in device memory (see megamoe_gemm_routed). T = 0 does nothing.
 * A layer runs one forward at a time (it owns its workspace). */
MEGAMOE_API megamoe_status_t megamoe_moe_layer_forward(megamoe_moe_layer_t layer, const megamoe_tensor_t* x,
                                                       const megamoe_tensor_t* x_scales,
                                                       const megamoe_tensor_t* topk_idx,
                                                       const megamoe_tensor_t* topk_weights,
                                                       const megamoe_tensor_t* y,
                                                       const megamoe_tensor_t* expert_counts,
                                                       const megamoe_tensor_t* num_tokens, void* stream);

/* ---------------------------------------------------------------------------------------------
 * 9. Expert parallelism (docs/EP.md): W ranks, rank r owning the global experts
 *    [expert_begin_r, expert_begin_r + num_local_experts_r); the ranges partition [0, E) in rank order.
 *    Tokens go (FP8 + scales + top-k) to the ranks owning their experts, are computed there, and the
 *    results come back and are combined in a fixed order.
 *
 *    Collective calls: every *_create below that takes a megamoe_ep_comm_t, and every dispatch, combine
 *    and forward, must be made by all W ranks, in the same order. A rank whose own arguments are wrong
 *    still takes part (it sends nothing, serves its peers) and then fails with the usual message, so its
 *    peers finish; creation fails on every rank alike when any rank's arguments are wrong or the ranks
 *    disagree. Only a NULL or destroyed handle (the communicator, dispatcher or layer) is detected
 *    before the rank can take part; its peers then wait (the loopback transport fails them once the
 *    rank's communicator and its objects are destroyed).
 * ------------------------------------------------------------------------------------------- */
typedef struct megamoe_ep_comm* megamoe_ep_comm_t;

/* One rank's endpoint over an NCCL communicator the caller owns (an ncclComm_t as void*, which must
 * outlive the endpoint and everything made from it), for a context on the CUDA backend on the
 * communicator's device. The rank and world size are the communicator's. */
MEGAMOE_API megamoe_status_t megamoe_ep_comm_create_nccl(megamoe_context_t context, void* nccl_comm,
                                                         megamoe_ep_comm_t* out_comm);
/* W = world_size endpoints of an in-process loopback group, rank i on contexts[i] (all on the same
 * backend; one context may serve several ranks): out_comms[i] for i < W. Each rank's calls must come
 * from its own thread, except for W = 1. */
MEGAMOE_API megamoe_status_t megamoe_ep_comm_create_loopback(const megamoe_context_t* contexts, int32_t world_size,
                                                             megamoe_ep_comm_t* out_comms);
/* Objects made from a communicator keep it alive. */
MEGAMOE_API megamoe_status_t megamoe_ep_comm_destroy(megamoe_ep_comm_t comm);
MEGAMOE_API megamoe_status_t megamoe_ep_comm_get_rank(megamoe_ep_comm_t comm, int32_t* out_rank,
                                                      int32_t* out_world_size);

/* NCCL communicators for the caller (MegaMoe loads libnccl.so.2 on first use; without it, or in a
 * build without CUDA, these fail with MEGAMOE_ERROR_BACKEND_UNAVAILABLE and the reason). */
#define MEGAMOE_NCCL_UNIQUE_ID_BYTES 128
/* ncclGetUniqueId: `size` must be MEGAMOE_NCCL_UNIQUE_ID_BYTES. Send the bytes to every process. */
MEGAMOE_API megamoe_status_t megamoe_nccl_get_unique_id(uint8_t* out_id, int64_t size);
/* ncclCommInitRank for one rank of a multi-process group, on CUDA device device_id. */
MEGAMOE_API megamoe_status_t megamoe_nccl_comm_init_rank(int32_t world_size, const uint8_t* id, int64_t id_size,
                                                         int32_t rank, int32_t device_id, void** out_comm);
/* ncclCommInitAll: out_comms[i], rank i, on device_ids[i], for one process driving `count` GPUs. As
 * with the loopback, each rank's EP calls must then come from its own thread: a collective waits for
 * its peers, so one thread calling the ranks in turn would wait forever on the first. */
MEGAMOE_API megamoe_status_t megamoe_nccl_comm_init_all(int32_t count, const int32_t* device_ids,
                                                        void** out_comms);
/* ncclCommDestroy; NULL does nothing. */
MEGAMOE_API megamoe_status_t megamoe_nccl_comm_destroy(void* comm);

/* Flags of megamoe_ep_config_t, beside the MEGAMOE_MOE_* flags of the local layer. */
/* Keep the dispatch, compute and combine times of the last forward (megamoe_ep_layer_get_timings). */
#define MEGAMOE_EP_RECORD_TIMINGS 256u

typedef struct megamoe_ep_config {
  uint32_t struct_size;        /* sizeof(megamoe_ep_config_t) */
  uint32_t flags;              /* MEGAMOE_MOE_* (the local layer) | MEGAMOE_EP_* */
  int32_t num_experts;         /* E over all ranks, 1..1024 */
  int32_t top_k;               /* 1..16 */
  int64_t hidden;              /* H, multiple of 128 */
  int64_t intermediate;        /* I, multiple of 128 (layers) */
  int64_t max_tokens_per_rank; /* C: the largest T any rank passes; >= 1, W * C * top_k < 2^31 */
  int32_t expert_begin;        /* this rank's first global expert */
  int32_t num_local_experts;   /* this rank's experts, >= 1 */
  float activation_alpha;      /* the local layer's activation and scaling, as megamoe_moe_config_t */
  float activation_beta;
  float activation_clamp;
  float routed_scaling_factor;
  megamoe_progress_fn progress; /* optional: weight preparation of the local layer */
  void* progress_user_data;
} megamoe_ep_config_t;

/* Dispatch and combine for a framework that runs its own expert compute in between. Only num_experts,
 * top_k, hidden, max_tokens_per_rank, expert_begin and num_local_experts of the config are used. A
 * dispatcher holds one dispatch until its combine. R_max = W * C received tokens at most. */
typedef struct megamoe_ep_dispatcher* megamoe_ep_dispatcher_t;

MEGAMOE_API megamoe_status_t megamoe_ep_dispatcher_create(megamoe_ep_comm_t comm, const megamoe_ep_config_t* config,
                                                          void* stream, megamoe_ep_dispatcher_t* out_dispatcher);
MEGAMOE_API megamoe_status_t megamoe_ep_dispatcher_destroy(megamoe_ep_dispatcher_t dispatcher);
/* R_max = W * C (rows of megamoe_ep_dispatch's outputs) and R_max * top_k (megamoe_ep_dispatch_expanded). */
MEGAMOE_API megamoe_status_t megamoe_ep_dispatcher_get_sizes(megamoe_ep_dispatcher_t dispatcher,
                                                             int64_t* out_max_recv_tokens,
                                                             int64_t* out_max_recv_rows_expanded);
/* x [T, H] BF16 (quantized as the MoE layer does), or FP8 with x_scales [T, H/128] FP32 (NULL for BF16);
 * topk_idx [T, top_k] INT32 or INT64 of GLOBAL experts (-1 = dropped); topk_weights [T, top_k] FP32;
 * T <= C. Receives, source rank by source rank and in each source's token order, every token with a
 * slot on this rank: recv_x [R_max, H] FP8, recv_x_scales [R_max, H/128] FP32, recv_topk_idx
 * [R_max, top_k] INT32 (LOCAL experts, -1 for slots on other ranks and dropped slots),
 * recv_topk_weights [R_max, top_k] FP32 (as given), recv_num_tokens INT32 [1] = R; rows >= R are
 * not written. */
MEGAMOE_API megamoe_status_t megamoe_ep_dispatch(megamoe_ep_dispatcher_t dispatcher, const megamoe_tensor_t* x,
                                                 const megamoe_tensor_t* x_scales, const megamoe_tensor_t* topk_idx,
                                                 const megamoe_tensor_t* topk_weights, const megamoe_tensor_t* recv_x,
                                                 const megamoe_tensor_t* recv_x_scales,
                                                 const megamoe_tensor_t* recv_topk_idx,
                                                 const megamoe_tensor_t* recv_topk_weights,
                                                 const megamoe_tensor_t* recv_num_tokens, void* stream);
/* As megamoe_ep_dispatch, but one row per (received token, local slot), sorted by local expert and
 * stable in (source rank, token, slot): recv_x [R_max * top_k, H] FP8, recv_x_scales [R_max * top_k,
 * H/128], recv_offsets INT32 [num_local_experts + 1] (local expert e owns rows [offsets[e],
 * offsets[e+1]); the layout megamoe_gemm_grouped_offsets takes). Rows past the last offset are not
 * written. */
MEGAMOE_API megamoe_status_t megamoe_ep_dispatch_expanded(megamoe_ep_dispatcher_t dispatcher,
                                                          const megamoe_tensor_t* x, const megamoe_tensor_t* x_scales,
                                                          const megamoe_tensor_t* topk_idx,
                                                          const megamoe_tensor_t* topk_weights,
                                                          const megamoe_tensor_t* recv_x,
                                                          const megamoe_tensor_t* recv_x_scales,
                                                          const megamoe_tensor_t* recv_offsets, void* stream);
/* Combines the held dispatch: partial BF16 or FP32 holds, after megamoe_ep_dispatch, one row per
 * received token [R_max, H] (its local slots already weighted and summed by the caller), or, after
 * megamoe_ep_dispatch_expanded, one row per expanded row [R_max * top_k, H], unweighted: a token's row
 * is then fmaf(w_j, row_j, sum) over its local slots j in slot order, from +0, in float32. Then
 * y [T, H] BF16 (T of the dispatch): y[t] = bf16(sum over ranks in rank order of the rows of token t),
 * +0 for a token with no slot routed. */
MEGAMOE_API megamoe_status_t megamoe_ep_combine(megamoe_ep_dispatcher_t dispatcher, const megamoe_tensor_t* partial,
                                                const megamoe_tensor_t* y, void* stream);

/* The MoE layer over all ranks: quantize -> dispatch -> this rank's experts (the layer of section 8)
 * on the received tokens -> combine. y equals the single-GPU layer over all E experts up to the order
 * in which a token's slot results are added in float32 (bitwise equal for W = 1), deterministic. */
typedef struct megamoe_ep_layer* megamoe_ep_layer_t;

/* Weights of this rank's experts only, as megamoe_moe_layer_create takes them: w13 [E_local, 2I, H],
 * w2 [E_local, H, I], FP8 with scales or BF16/FP32 without. */
MEGAMOE_API megamoe_status_t megamoe_ep_layer_create(megamoe_ep_comm_t comm, const megamoe_ep_config_t* config,
                                                     const megamoe_tensor_t* w13, const megamoe_tensor_t* w13_scales,
                                                     const megamoe_tensor_t* w2, const megamoe_tensor_t* w2_scales,
                                                     void* stream, megamoe_ep_layer_t* out_layer);
MEGAMOE_API megamoe_status_t megamoe_ep_layer_destroy(megamoe_ep_layer_t layer);
/* x, x_scales, topk_idx (GLOBAL experts), topk_weights and y as megamoe_moe_layer_forward, T <= C;
 * T = 0 is valid (the rank still serves its peers). expert_counts: NULL or INT32 [num_local_experts],
 * incremented by the slots of all ranks routed to this rank's experts. */
MEGAMOE_API megamoe_status_t megamoe_ep_layer_forward(megamoe_ep_layer_t layer, const megamoe_tensor_t* x,
                                                      const megamoe_tensor_t* x_scales,
                                                      const megamoe_tensor_t* topk_idx,
                                                      const megamoe_tensor_t* topk_weights, const megamoe_tensor_t* y,
                                                      const megamoe_tensor_t* expert_counts, void* stream);
/* Milliseconds of the last successful forward of a layer created with MEGAMOE_EP_RECORD_TIMINGS:
 * dispatch (quantize, pack, exchange, unpack), compute (this rank's experts), combine (return,
 * exchange, combine). Device time on CUDA (waits for the forward); host wall clock on the CPU. */
MEGAMOE_API megamoe_status_t megamoe_ep_layer_get_timings(megamoe_ep_layer_t layer, double* out_dispatch_ms,
                                                          double* out_compute_ms, double* out_combine_ms);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MEGAMOE_MEGAMOE_H_ */
