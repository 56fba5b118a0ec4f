using System.Diagnostics.CodeAnalysis;
using System.Text;
using MegaMoe.Interop;

namespace MegaMoe;

/// <summary>
/// A backend (and, for CUDA, a device) that tensors, operations, routed plans and MoE layers belong to. A context may
/// be used from several threads at once. Objects created from it keep the native context alive, so disposing it
/// while they live only drops this reference.
/// </summary>
public sealed partial class MoeContext : IDisposable
{
    private readonly ContextHandle _handle;
    private int _numThreads;

    private MoeContext(ContextHandle handle, Backend backend)
    {
        _handle = handle;
        Backend = backend;
    }

    /// <summary>The backend in use: <see cref="Backend.Cpu"/> or <see cref="Backend.Cuda"/>, never <see cref="Backend.Best"/>.</summary>
    public Backend Backend { get; }

    /// <summary>The device this context runs on, queried now (the CPU's worker count follows <see cref="NumThreads"/>).</summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public unsafe DeviceInfo DeviceInfo
    {
        get
        {
            var info = new MegaMoeDeviceInfo { StructSize = (uint)sizeof(MegaMoeDeviceInfo) };
            NativeMethods.megamoe_context_get_device_info(Handle, &info).ThrowIfFailed();
            ReadOnlySpan<byte> name = info.Name;
            int length = name.IndexOf((byte)0);
            return new DeviceInfo(
                (Backend)info.Backend,
                info.DeviceId,
                Encoding.UTF8.GetString(length < 0 ? name : name[..length]),
                new Version(info.ComputeCapabilityMajor, info.ComputeCapabilityMinor),
                info.MultiprocessorCount,
                info.DriverVersion,
                info.RuntimeVersion,
                info.TotalMemoryBytes,
                info.L2CacheBytes);
        }
    }

    /// <summary>
    /// CPU worker threads; 0 (the default) means one per hardware thread. Other backends accept and ignore it.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The context was disposed.</exception>
    public int NumThreads
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            return _numThreads;
        }

        set
        {
            NativeMethods.megamoe_context_set_num_threads(Handle, value).ThrowIfFailed();
            _numThreads = value;
        }
    }

    /// <summary>The native handle; throws once the context is disposed.</summary>
    internal ContextHandle Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            return _handle;
        }
    }

    /// <summary>Creates a context.</summary>
    /// <param name="backend">The backend; <see cref="Backend.Best"/> takes CUDA when usable, else the CPU.</param>
    /// <param name="deviceId">The CUDA ordinal; 0 for the CPU.</param>
    /// <exception cref="MegaMoeBackendUnavailableException">The backend cannot be used here; the message says why.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded; the message lists what was tried.</exception>
    /// <exception cref="InvalidOperationException">
    /// The loaded native library does not match this binding (another major.minor version, other struct sizes, or a
    /// function this binding imports is not exported); the message names the file (<see cref="MegaMoeLibrary.Path"/>).
    /// </exception>
    public static MoeContext Create(Backend backend = Backend.Best, int deviceId = 0)
    {
        NativeLibraryGuard.EnsureLoaded();
        NativeMethods.megamoe_context_create(backend, deviceId, out ContextHandle handle).ThrowIfFailed(handle);
        try
        {
            NativeMethods.megamoe_context_get_backend(handle, out Backend actual).ThrowIfFailed();
            return new MoeContext(handle, actual);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Whether <paramref name="backend"/> can be used here.</summary>
    /// <param name="backend">The backend to probe.</param>
    /// <param name="deviceId">The CUDA ordinal; 0 for the CPU.</param>
    /// <param name="reason">Why not, from the native library; <see langword="null"/> when it can.</param>
    /// <exception cref="MegaMoeException">The probe itself failed (for example a negative <paramref name="deviceId"/>).</exception>
    public static bool IsBackendAvailable(Backend backend, int deviceId, [NotNullWhen(false)] out string? reason)
    {
        NativeLibraryGuard.EnsureLoaded();
        MegaMoeStatus status = NativeMethods.megamoe_backend_available(backend, deviceId);
        if (status == MegaMoeStatus.BackendUnavailable)
        {
            reason = NativeStatus.LastErrorMessage();
            return false;
        }

        status.ThrowIfFailed();
        reason = null;
        return true;
    }

    /// <summary>Waits for the work enqueued on <paramref name="stream"/> (no-op on the CPU).</summary>
    /// <param name="stream">A <c>cudaStream_t</c>; 0 is the legacy default stream.</param>
    public void Synchronize(nint stream = default) =>
        NativeMethods.megamoe_context_synchronize(Handle, stream).ThrowIfFailed();

    /// <summary>Releases this reference to the native context; harmless when repeated.</summary>
    public void Dispose() => _handle.Dispose();

    /// <inheritdoc/>
    public override string ToString() => _handle.IsClosed ? "MoeContext (disposed)" : $"MoeContext ({Backend})";
}
