using System.Runtime.InteropServices;

namespace MegaMoe.Interop;

/// <summary>
/// Base of the native handle wrappers: NULL is invalid, and the handle is released exactly once, by
/// <see cref="SafeHandle.Dispose()"/> or by the finalizer, even while calls that received it are in flight
/// (the marshaller adds a reference for the duration of each call).
/// </summary>
internal abstract class MegaMoeHandle : SafeHandle
{
    protected MegaMoeHandle()
        : base(nint.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == nint.Zero;
}

/// <summary><c>megamoe_context_t</c>, released by <c>megamoe_context_destroy</c>.</summary>
internal sealed class ContextHandle : MegaMoeHandle
{
    protected override bool ReleaseHandle() => NativeMethods.megamoe_context_destroy(handle) == MegaMoeStatus.Success;
}

/// <summary><c>megamoe_buffer_t</c>, released by <c>megamoe_buffer_destroy</c>.</summary>
internal sealed class BufferHandle : MegaMoeHandle
{
    protected override bool ReleaseHandle() => NativeMethods.megamoe_buffer_destroy(handle) == MegaMoeStatus.Success;
}

/// <summary><c>megamoe_routed_plan_t</c>, released by <c>megamoe_routed_plan_destroy</c>.</summary>
internal sealed class RoutedPlanHandle : MegaMoeHandle
{
    protected override bool ReleaseHandle() =>
        NativeMethods.megamoe_routed_plan_destroy(handle) == MegaMoeStatus.Success;
}

/// <summary><c>megamoe_moe_layer_t</c>, released by <c>megamoe_moe_layer_destroy</c>.</summary>
internal sealed class MoeLayerHandle : MegaMoeHandle
{
    protected override bool ReleaseHandle() => NativeMethods.megamoe_moe_layer_destroy(handle) == MegaMoeStatus.Success;
}

/// <summary><c>megamoe_ep_comm_t</c>, released by <c>megamoe_ep_comm_destroy</c>.</summary>
internal sealed class EpCommHandle : MegaMoeHandle
{
    public EpCommHandle()
    {
    }

    /// <summary>Takes ownership of a handle returned through an array (<c>megamoe_ep_comm_create_loopback</c>).</summary>
    public EpCommHandle(nint handle) => SetHandle(handle);

    protected override bool ReleaseHandle() => NativeMethods.megamoe_ep_comm_destroy(handle) == MegaMoeStatus.Success;
}

/// <summary><c>megamoe_ep_dispatcher_t</c>, released by <c>megamoe_ep_dispatcher_destroy</c>.</summary>
internal sealed class EpDispatcherHandle : MegaMoeHandle
{
    protected override bool ReleaseHandle() =>
        NativeMethods.megamoe_ep_dispatcher_destroy(handle) == MegaMoeStatus.Success;
}

/// <summary><c>megamoe_ep_layer_t</c>, released by <c>megamoe_ep_layer_destroy</c>.</summary>
internal sealed class EpLayerHandle : MegaMoeHandle
{
    protected override bool ReleaseHandle() => NativeMethods.megamoe_ep_layer_destroy(handle) == MegaMoeStatus.Success;
}

/// <summary>An <c>ncclComm_t</c> made by <c>megamoe_nccl_comm_init_*</c>, released by <c>megamoe_nccl_comm_destroy</c>.</summary>
internal sealed class NcclCommHandle : MegaMoeHandle
{
    /// <summary>Takes ownership of a communicator the native side returned.</summary>
    public NcclCommHandle(nint handle) => SetHandle(handle);

    protected override bool ReleaseHandle() => NativeMethods.megamoe_nccl_comm_destroy(handle) == MegaMoeStatus.Success;
}
