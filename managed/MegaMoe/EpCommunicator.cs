using System.Runtime.InteropServices;
using MegaMoe.Interop;

namespace MegaMoe;

/// <summary>
/// One rank's endpoint of an expert-parallel group (docs/EP.md): over NCCL between GPUs, or over the in-process
/// loopback that simulates W ranks on one device (or on the CPU backend). <see cref="EpDispatcher"/>s and
/// <see cref="EpMoeLayer"/>s made from it keep it alive. Their creation and calls are collective: every rank makes
/// them, in the same order; the loopback ranks each call from their own thread.
/// </summary>
public sealed class EpCommunicator : IDisposable
{
    private readonly EpCommHandle _handle;

    private EpCommunicator(EpCommHandle handle)
    {
        _handle = handle;
        NativeMethods.megamoe_ep_comm_get_rank(handle, out int rank, out int worldSize).ThrowIfFailed();
        Rank = rank;
        WorldSize = worldSize;
    }

    /// <summary>This endpoint's rank, 0 to <see cref="WorldSize"/> - 1.</summary>
    public int Rank { get; }

    /// <summary>Ranks in the group, W.</summary>
    public int WorldSize { get; }

    /// <summary>The native handle; throws once disposed.</summary>
    internal EpCommHandle Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            return _handle;
        }
    }

    /// <summary>
    /// The W = <paramref name="contexts"/>.Count endpoints of a loopback group, rank i on <paramref name="contexts"/>[i]
    /// (one context may serve several ranks; all on one backend). Run each rank's calls on its own thread.
    /// </summary>
    /// <param name="contexts">One context per rank.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">The list is empty or too long, or the contexts' backends differ.</exception>
    /// <exception cref="MegaMoeUnsupportedException">The backend does not implement expert parallelism yet.</exception>
    public static unsafe EpCommunicator[] CreateLoopback(IReadOnlyList<MoeContext> contexts)
    {
        ArgumentNullException.ThrowIfNull(contexts);
        NativeLibraryGuard.EnsureLoaded();
        int count = contexts.Count;
        var handles = new SafeHandle[count];
        var raw = new nint[Math.Max(count, 1)];
        var created = new nint[Math.Max(count, 1)];
        int referenced = 0;
        try
        {
            for (; referenced < count; referenced++)
            {
                ArgumentNullException.ThrowIfNull(contexts[referenced], nameof(contexts));
                SafeHandle handle = contexts[referenced].Handle;
                bool added = false;
                handle.DangerousAddRef(ref added);
                handles[referenced] = handle;
                raw[referenced] = handle.DangerousGetHandle();
            }

            fixed (nint* input = raw)
            fixed (nint* output = created)
            {
                NativeMethods.megamoe_ep_comm_create_loopback(input, count, output).ThrowIfFailed();
            }
        }
        finally
        {
            for (int i = 0; i < referenced; i++)
            {
                handles[i].DangerousRelease();
            }
        }

        // Every handle gets its owner first, so none leaks if reading a rank fails.
        var owned = created.Take(count).Select(comm => new EpCommHandle(comm)).ToArray();
        try
        {
            return [.. owned.Select(handle => new EpCommunicator(handle))];
        }
        catch
        {
            foreach (EpCommHandle handle in owned)
            {
                handle.Dispose();
            }

            throw;
        }
    }

    /// <summary>This process's endpoint over <paramref name="communicator"/>, for a context on its device.</summary>
    /// <param name="context">A <see cref="Backend.Cuda"/> context on the communicator's device.</param>
    /// <param name="communicator">The NCCL communicator; it must outlive this endpoint and what is made from it.</param>
    /// <exception cref="MegaMoeBackendUnavailableException">NCCL cannot be used here; the message says why.</exception>
    public static EpCommunicator CreateNccl(MoeContext context, NcclCommunicator communicator)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(communicator);
        NcclCommHandle nccl = communicator.Handle;
        bool added = false;
        nccl.DangerousAddRef(ref added);
        try
        {
            NativeMethods.megamoe_ep_comm_create_nccl(context.Handle, nccl.DangerousGetHandle(), out EpCommHandle handle)
                .ThrowIfFailed(handle);
            try
            {
                return new EpCommunicator(handle);
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }
        finally
        {
            nccl.DangerousRelease();
        }
    }

    /// <summary>Releases this reference to the endpoint; objects made from it keep it alive. Harmless when repeated.</summary>
    public void Dispose() => _handle.Dispose();

    /// <inheritdoc/>
    public override string ToString() =>
        _handle.IsClosed ? "EpCommunicator (disposed)" : $"EpCommunicator (rank {Rank} of {WorldSize})";
}
