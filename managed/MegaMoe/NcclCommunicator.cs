using MegaMoe.Interop;

namespace MegaMoe;

/// <summary>
/// An NCCL communicator (<c>ncclComm_t</c>) made for the caller; it must outlive the <see cref="EpCommunicator"/>s
/// made over it. MegaMoe never starts processes: one process drives all its GPUs (<see cref="InitAll"/>), or each
/// process initializes its rank from a shared <see cref="NcclUniqueId"/> (<see cref="InitRank"/>).
/// </summary>
public sealed class NcclCommunicator : IDisposable
{
    private readonly NcclCommHandle _handle;

    private NcclCommunicator(NcclCommHandle handle) => _handle = handle;

    /// <summary>The native handle; throws once disposed.</summary>
    internal NcclCommHandle Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            return _handle;
        }
    }

    /// <summary>One communicator per device of this process, rank i on <paramref name="deviceIds"/>[i] (<c>ncclCommInitAll</c>).</summary>
    /// <param name="deviceIds">Distinct CUDA ordinals.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">The list is empty, or an ordinal is negative or repeated.</exception>
    /// <exception cref="MegaMoeBackendUnavailableException">NCCL cannot be used here; the message says why.</exception>
    public static unsafe NcclCommunicator[] InitAll(IReadOnlyList<int> deviceIds)
    {
        ArgumentNullException.ThrowIfNull(deviceIds);
        NativeLibraryGuard.EnsureLoaded();
        int[] devices = [.. deviceIds];
        var comms = new nint[Math.Max(devices.Length, 1)];
        fixed (int* ids = devices)
        fixed (nint* output = comms)
        {
            NativeMethods.megamoe_nccl_comm_init_all(devices.Length, ids, output).ThrowIfFailed();
        }

        return [.. comms.Take(devices.Length).Select(comm => new NcclCommunicator(new NcclCommHandle(comm)))];
    }

    /// <summary>This process's rank of a group of <paramref name="worldSize"/> processes (<c>ncclCommInitRank</c>).</summary>
    /// <param name="worldSize">Ranks in the group.</param>
    /// <param name="id">The group's id, made by one process and sent to all.</param>
    /// <param name="rank">This process's rank, 0 to <paramref name="worldSize"/> - 1.</param>
    /// <param name="deviceId">The CUDA ordinal this rank runs on.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A value is out of range.</exception>
    /// <exception cref="MegaMoeBackendUnavailableException">NCCL cannot be used here; the message says why.</exception>
    public static unsafe NcclCommunicator InitRank(int worldSize, NcclUniqueId id, int rank, int deviceId)
    {
        ArgumentNullException.ThrowIfNull(id);
        NativeLibraryGuard.EnsureLoaded();
        nint comm;
        fixed (byte* bytes = id.Bytes)
        {
            NativeMethods.megamoe_nccl_comm_init_rank(worldSize, bytes, NcclUniqueId.Size, rank, deviceId, out comm)
                .ThrowIfFailed();
        }

        return new NcclCommunicator(new NcclCommHandle(comm));
    }

    /// <summary>Destroys the communicator (<c>ncclCommDestroy</c>); harmless when repeated.</summary>
    public void Dispose() => _handle.Dispose();
}
