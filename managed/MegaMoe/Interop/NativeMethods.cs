using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

// Every signature below is blittable: the source generator emits plain calls with no runtime marshalling stubs,
// and a non-blittable type added by mistake is a compile error instead of a silent copy.
[assembly: DisableRuntimeMarshalling]

namespace MegaMoe.Interop;

/// <summary>
/// One declaration per function of <c>native/include/megamoe/megamoe.h</c>, in the header's order and with its
/// names (AbiTests checks both directions). Handles cross as <see cref="SafeHandle"/>s so a call keeps its
/// object alive; <c>*_destroy</c> take the raw pointer because only <see cref="SafeHandle.ReleaseHandle"/> calls them.
/// Callers go through <see cref="NativeLibraryGuard.EnsureLoaded"/> first and check statuses with
/// <see cref="NativeStatus.ThrowIfFailed(MegaMoeStatus)"/>.
/// </summary>
internal static unsafe partial class NativeMethods
{
    /// <summary>Name resolved by <see cref="NativeLibraryLoader"/>.</summary>
    public const string LibraryName = "megamoe";

    /// <summary>
    /// The entry point of every declaration below, for <see cref="NativeLibraryGuard"/>'s export check (kept
    /// without reflection for trimming; AbiTests checks it against the declarations).
    /// </summary>
    public static readonly string[] ImportedFunctions =
    [
        "megamoe_version",
        "megamoe_version_string",
        "megamoe_build_info",
        "megamoe_status_string",
        "megamoe_last_error_message",
        "megamoe_live_object_count",
        "megamoe_struct_size",
        "megamoe_backend_available",
        "megamoe_context_create",
        "megamoe_context_destroy",
        "megamoe_context_get_backend",
        "megamoe_context_set_num_threads",
        "megamoe_context_get_device_info",
        "megamoe_context_synchronize",
        "megamoe_buffer_create",
        "megamoe_buffer_destroy",
        "megamoe_buffer_get_data",
        "megamoe_buffer_get_size",
        "megamoe_buffer_write",
        "megamoe_buffer_read",
        "megamoe_buffer_fill",
        "megamoe_quantize_activations",
        "megamoe_quantize_activations_checked",
        "megamoe_dequantize_activations",
        "megamoe_quantize_weights",
        "megamoe_dequantize_weights",
        "megamoe_gemm_dense",
        "megamoe_gemm_grouped_contiguous",
        "megamoe_gemm_grouped_offsets",
        "megamoe_gemm_grouped_masked",
        "megamoe_routed_plan_create",
        "megamoe_routed_plan_destroy",
        "megamoe_gemm_routed",
        "megamoe_interleave_gate_up",
        "megamoe_moe_layer_create",
        "megamoe_moe_layer_destroy",
        "megamoe_moe_layer_get_workspace_size",
        "megamoe_moe_layer_forward",
        "megamoe_ep_comm_create_nccl",
        "megamoe_ep_comm_create_loopback",
        "megamoe_ep_comm_destroy",
        "megamoe_ep_comm_get_rank",
        "megamoe_nccl_get_unique_id",
        "megamoe_nccl_comm_init_rank",
        "megamoe_nccl_comm_init_all",
        "megamoe_nccl_comm_destroy",
        "megamoe_ep_dispatcher_create",
        "megamoe_ep_dispatcher_destroy",
        "megamoe_ep_dispatcher_get_sizes",
        "megamoe_ep_dispatch",
        "megamoe_ep_dispatch_expanded",
        "megamoe_ep_combine",
        "megamoe_ep_layer_create",
        "megamoe_ep_layer_destroy",
        "megamoe_ep_layer_forward",
        "megamoe_ep_layer_get_timings",
    ];

    // Version

    [LibraryImport(LibraryName, EntryPoint = "megamoe_version")]
    public static partial int megamoe_version();

    [LibraryImport(LibraryName, EntryPoint = "megamoe_version_string")]
    public static partial byte* megamoe_version_string();

    [LibraryImport(LibraryName, EntryPoint = "megamoe_build_info")]
    public static partial byte* megamoe_build_info();

    // Status and errors

    [LibraryImport(LibraryName, EntryPoint = "megamoe_status_string")]
    public static partial byte* megamoe_status_string(MegaMoeStatus status);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_last_error_message")]
    public static partial byte* megamoe_last_error_message();

    [LibraryImport(LibraryName, EntryPoint = "megamoe_live_object_count")]
    public static partial long megamoe_live_object_count();

    [LibraryImport(LibraryName, EntryPoint = "megamoe_struct_size", StringMarshalling = StringMarshalling.Utf8)]
    public static partial long megamoe_struct_size(string typeName);

    // Contexts

    [LibraryImport(LibraryName, EntryPoint = "megamoe_backend_available")]
    public static partial MegaMoeStatus megamoe_backend_available(Backend backend, int deviceId);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_context_create")]
    public static partial MegaMoeStatus megamoe_context_create(Backend backend, int deviceId, out ContextHandle context);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_context_destroy")]
    public static partial MegaMoeStatus megamoe_context_destroy(nint context);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_context_get_backend")]
    public static partial MegaMoeStatus megamoe_context_get_backend(ContextHandle context, out Backend backend);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_context_set_num_threads")]
    public static partial MegaMoeStatus megamoe_context_set_num_threads(ContextHandle context, int numThreads);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_context_get_device_info")]
    public static partial MegaMoeStatus megamoe_context_get_device_info(ContextHandle context, MegaMoeDeviceInfo* info);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_context_synchronize")]
    public static partial MegaMoeStatus megamoe_context_synchronize(ContextHandle context, nint stream);

    // Buffers

    [LibraryImport(LibraryName, EntryPoint = "megamoe_buffer_create")]
    public static partial MegaMoeStatus megamoe_buffer_create(ContextHandle context, long sizeBytes, out BufferHandle buffer);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_buffer_destroy")]
    public static partial MegaMoeStatus megamoe_buffer_destroy(nint buffer);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_buffer_get_data")]
    public static partial MegaMoeStatus megamoe_buffer_get_data(
        BufferHandle buffer, out nint data, out int deviceType, out int deviceId);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_buffer_get_size")]
    public static partial MegaMoeStatus megamoe_buffer_get_size(BufferHandle buffer, out long sizeBytes);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_buffer_write")]
    public static partial MegaMoeStatus megamoe_buffer_write(
        BufferHandle buffer, long offsetBytes, void* host, long sizeBytes, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_buffer_read")]
    public static partial MegaMoeStatus megamoe_buffer_read(
        BufferHandle buffer, long offsetBytes, void* host, long sizeBytes, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_buffer_fill")]
    public static partial MegaMoeStatus megamoe_buffer_fill(
        BufferHandle buffer, long offsetBytes, long sizeBytes, byte value, nint stream);

    // Operations

    [LibraryImport(LibraryName, EntryPoint = "megamoe_quantize_activations")]
    public static partial MegaMoeStatus megamoe_quantize_activations(
        ContextHandle context, MegaMoeTensor* x, MegaMoeTensor* q, MegaMoeTensor* scales, uint flags, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_quantize_activations_checked")]
    public static partial MegaMoeStatus megamoe_quantize_activations_checked(
        ContextHandle context, MegaMoeTensor* x, MegaMoeTensor* q, MegaMoeTensor* scales, uint flags,
        MegaMoeTensor* nonfiniteRows, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_dequantize_activations")]
    public static partial MegaMoeStatus megamoe_dequantize_activations(
        ContextHandle context, MegaMoeTensor* q, MegaMoeTensor* scales, MegaMoeTensor* output, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_quantize_weights")]
    public static partial MegaMoeStatus megamoe_quantize_weights(
        ContextHandle context, MegaMoeTensor* w, MegaMoeTensor* q, MegaMoeTensor* scales, uint flags, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_dequantize_weights")]
    public static partial MegaMoeStatus megamoe_dequantize_weights(
        ContextHandle context, MegaMoeTensor* q, MegaMoeTensor* scales, MegaMoeTensor* output, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_gemm_dense")]
    public static partial MegaMoeStatus megamoe_gemm_dense(
        ContextHandle context, MegaMoeTensor* a, MegaMoeTensor* aScales, MegaMoeTensor* b, MegaMoeTensor* bScales,
        MegaMoeTensor* d, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_gemm_grouped_contiguous")]
    public static partial MegaMoeStatus megamoe_gemm_grouped_contiguous(
        ContextHandle context, MegaMoeTensor* a, MegaMoeTensor* aScales, MegaMoeTensor* b, MegaMoeTensor* bScales,
        MegaMoeTensor* mIndices, MegaMoeTensor* d, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_gemm_grouped_offsets")]
    public static partial MegaMoeStatus megamoe_gemm_grouped_offsets(
        ContextHandle context, MegaMoeTensor* a, MegaMoeTensor* aScales, MegaMoeTensor* b, MegaMoeTensor* bScales,
        MegaMoeTensor* offsets, MegaMoeTensor* d, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_gemm_grouped_masked")]
    public static partial MegaMoeStatus megamoe_gemm_grouped_masked(
        ContextHandle context, MegaMoeTensor* a, MegaMoeTensor* aScales, MegaMoeTensor* b, MegaMoeTensor* bScales,
        MegaMoeTensor* maskedM, long expectedM, MegaMoeTensor* d, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_routed_plan_create")]
    public static partial MegaMoeStatus megamoe_routed_plan_create(
        ContextHandle context, long maxTokens, int topK, int numExperts, long n, long k, uint flags,
        out RoutedPlanHandle plan);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_routed_plan_destroy")]
    public static partial MegaMoeStatus megamoe_routed_plan_destroy(nint plan);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_gemm_routed")]
    public static partial MegaMoeStatus megamoe_gemm_routed(
        RoutedPlanHandle plan, MegaMoeTensor* a, MegaMoeTensor* aScales, MegaMoeTensor* b, MegaMoeTensor* bScales,
        MegaMoeTensor* topkIdx, MegaMoeTensor* topkWeights, MegaMoeTensor* numTokens, MegaMoeTensor* d, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_interleave_gate_up")]
    public static partial MegaMoeStatus megamoe_interleave_gate_up(
        ContextHandle context, MegaMoeTensor* w, MegaMoeTensor* output, int inverse, nint stream);

    // MoE layer

    [LibraryImport(LibraryName, EntryPoint = "megamoe_moe_layer_create")]
    public static partial MegaMoeStatus megamoe_moe_layer_create(
        ContextHandle context, MegaMoeMoeConfig* config, MegaMoeTensor* w13, MegaMoeTensor* w13Scales,
        MegaMoeTensor* w2, MegaMoeTensor* w2Scales, nint stream, out MoeLayerHandle layer);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_moe_layer_destroy")]
    public static partial MegaMoeStatus megamoe_moe_layer_destroy(nint layer);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_moe_layer_get_workspace_size")]
    public static partial MegaMoeStatus megamoe_moe_layer_get_workspace_size(MoeLayerHandle layer, out long bytes);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_moe_layer_forward")]
    public static partial MegaMoeStatus megamoe_moe_layer_forward(
        MoeLayerHandle layer, MegaMoeTensor* x, MegaMoeTensor* xScales, MegaMoeTensor* topkIdx,
        MegaMoeTensor* topkWeights, MegaMoeTensor* y, MegaMoeTensor* expertCounts, MegaMoeTensor* numTokens,
        nint stream);

    // Expert parallelism. Arrays of handles cross as nint*: the caller holds a reference on each SafeHandle for
    // the call. An ncclComm_t crosses as the void* it is.

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_comm_create_nccl")]
    public static partial MegaMoeStatus megamoe_ep_comm_create_nccl(
        ContextHandle context, nint ncclComm, out EpCommHandle comm);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_comm_create_loopback")]
    public static partial MegaMoeStatus megamoe_ep_comm_create_loopback(nint* contexts, int worldSize, nint* comms);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_comm_destroy")]
    public static partial MegaMoeStatus megamoe_ep_comm_destroy(nint comm);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_comm_get_rank")]
    public static partial MegaMoeStatus megamoe_ep_comm_get_rank(EpCommHandle comm, out int rank, out int worldSize);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_nccl_get_unique_id")]
    public static partial MegaMoeStatus megamoe_nccl_get_unique_id(byte* id, long size);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_nccl_comm_init_rank")]
    public static partial MegaMoeStatus megamoe_nccl_comm_init_rank(
        int worldSize, byte* id, long idSize, int rank, int deviceId, out nint comm);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_nccl_comm_init_all")]
    public static partial MegaMoeStatus megamoe_nccl_comm_init_all(int count, int* deviceIds, nint* comms);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_nccl_comm_destroy")]
    public static partial MegaMoeStatus megamoe_nccl_comm_destroy(nint comm);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_dispatcher_create")]
    public static partial MegaMoeStatus megamoe_ep_dispatcher_create(
        EpCommHandle comm, MegaMoeEpConfig* config, nint stream, out EpDispatcherHandle dispatcher);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_dispatcher_destroy")]
    public static partial MegaMoeStatus megamoe_ep_dispatcher_destroy(nint dispatcher);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_dispatcher_get_sizes")]
    public static partial MegaMoeStatus megamoe_ep_dispatcher_get_sizes(
        EpDispatcherHandle dispatcher, out long maxRecvTokens, out long maxRecvRowsExpanded);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_dispatch")]
    public static partial MegaMoeStatus megamoe_ep_dispatch(
        EpDispatcherHandle dispatcher, MegaMoeTensor* x, MegaMoeTensor* xScales, MegaMoeTensor* topkIdx,
        MegaMoeTensor* topkWeights, MegaMoeTensor* recvX, MegaMoeTensor* recvXScales, MegaMoeTensor* recvTopkIdx,
        MegaMoeTensor* recvTopkWeights, MegaMoeTensor* recvNumTokens, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_dispatch_expanded")]
    public static partial MegaMoeStatus megamoe_ep_dispatch_expanded(
        EpDispatcherHandle dispatcher, MegaMoeTensor* x, MegaMoeTensor* xScales, MegaMoeTensor* topkIdx,
        MegaMoeTensor* topkWeights, MegaMoeTensor* recvX, MegaMoeTensor* recvXScales, MegaMoeTensor* recvOffsets,
        nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_combine")]
    public static partial MegaMoeStatus megamoe_ep_combine(
        EpDispatcherHandle dispatcher, MegaMoeTensor* partial, MegaMoeTensor* y, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_layer_create")]
    public static partial MegaMoeStatus megamoe_ep_layer_create(
        EpCommHandle comm, MegaMoeEpConfig* config, MegaMoeTensor* w13, MegaMoeTensor* w13Scales, MegaMoeTensor* w2,
        MegaMoeTensor* w2Scales, nint stream, out EpLayerHandle layer);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_layer_destroy")]
    public static partial MegaMoeStatus megamoe_ep_layer_destroy(nint layer);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_layer_forward")]
    public static partial MegaMoeStatus megamoe_ep_layer_forward(
        EpLayerHandle layer, MegaMoeTensor* x, MegaMoeTensor* xScales, MegaMoeTensor* topkIdx,
        MegaMoeTensor* topkWeights, MegaMoeTensor* y, MegaMoeTensor* expertCounts, nint stream);

    [LibraryImport(LibraryName, EntryPoint = "megamoe_ep_layer_get_timings")]
    public static partial MegaMoeStatus megamoe_ep_layer_get_timings(
        EpLayerHandle layer, out double dispatchMs, out double computeMs, out double combineMs);
}
