using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace MegaMoe.Interop;

/// <summary>
/// Connects <c>megamoe_progress_fn</c> to an <see cref="IProgress{T}"/> and a <see cref="CancellationToken"/> for
/// the duration of one native call. The native side gets a static unmanaged callback plus a GC handle to this
/// object as <c>user_data</c>, so no delegate has to be kept alive or pinned.
/// </summary>
internal sealed unsafe class ProgressBridge : IDisposable
{
    private readonly IProgress<double>? _progress;
    private readonly CancellationToken _cancellationToken;
    private GCHandle _self;
    private ExceptionDispatchInfo? _callbackFailure;

    public ProgressBridge(IProgress<double>? progress, CancellationToken cancellationToken)
    {
        _progress = progress;
        _cancellationToken = cancellationToken;
        _self = GCHandle.Alloc(this);
    }

    /// <summary>
    /// A bridge when someone listens; otherwise <see langword="null"/>, and the native side skips the callback (no GC
    /// handle is made).
    /// </summary>
    public static ProgressBridge? For(IProgress<double>? progress, CancellationToken cancellationToken) =>
        progress is not null || cancellationToken.CanBeCanceled ? new ProgressBridge(progress, cancellationToken) : null;

    /// <summary>
    /// Ends a <c>*_create</c> call made with <paramref name="bridge"/>: unless <paramref name="status"/> is
    /// <see cref="MegaMoeStatus.Success"/>, disposes the (invalid) <paramref name="created"/> handle and throws what
    /// the status stands for (see <see cref="ThrowIfFailed(MegaMoeStatus)"/>).
    /// </summary>
    public static void ThrowIfCreateFailed(MegaMoeStatus status, ProgressBridge? bridge, SafeHandle created)
    {
        if (status == MegaMoeStatus.Success)
        {
            return;
        }

        try
        {
            if (bridge is not null)
            {
                bridge.ThrowIfFailed(status);
            }

            status.ThrowIfFailed();
        }
        finally
        {
            created.Dispose();
        }
    }

    /// <summary>The value for <c>megamoe_moe_config_t.progress</c>.</summary>
    public static delegate* unmanaged[Cdecl]<nint, long, long, int> Callback => &OnProgress;

    /// <summary>The value for <c>megamoe_moe_config_t.progress_user_data</c>.</summary>
    public nint UserData => GCHandle.ToIntPtr(_self);

    /// <summary>
    /// Converts a <see cref="MegaMoeStatus.Cancelled"/> result into the exception that explains it: the exception the
    /// progress handler threw, or <see cref="OperationCanceledException"/> for the token; other statuses pass through.
    /// </summary>
    public void ThrowIfFailed(MegaMoeStatus status)
    {
        if (status == MegaMoeStatus.Cancelled)
        {
            MegaMoeException native = MegaMoeException.Create(status, NativeStatus.LastErrorMessage());
            _callbackFailure?.Throw();
            if (_cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(native.Message, native, _cancellationToken);
            }

            throw native;
        }

        status.ThrowIfFailed();
    }

    public void Dispose()
    {
        if (_self.IsAllocated)
        {
            _self.Free();
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int OnProgress(nint userData, long done, long total)
    {
        // An exception must not unwind into native frames: remember it, stop the work, rethrow it after the call.
        ProgressBridge? bridge = null;
        try
        {
            bridge = (ProgressBridge)GCHandle.FromIntPtr(userData).Target!;
            bridge._progress?.Report(total > 0 ? (double)done / total : 1.0);
            return bridge._cancellationToken.IsCancellationRequested ? 1 : 0;
        }
#pragma warning disable CA1031 // Any exception is captured and rethrown on the calling thread.
        catch (Exception e)
#pragma warning restore CA1031
        {
            // Without a bridge (a bad user_data) there is nowhere to report to; stopping is all that is left.
            bridge?._callbackFailure = ExceptionDispatchInfo.Capture(e);
            return 1;
        }
    }
}
