using MegaMoe.Interop;

namespace MegaMoe;

/// <summary>
/// An <c>ncclUniqueId</c>: made once (<see cref="Create"/>) by one process, sent as bytes (<see cref="ToArray"/>) to
/// every process of a group, which each pass it with their rank to <see cref="NcclCommunicator.InitRank"/>.
/// </summary>
public sealed class NcclUniqueId
{
    /// <summary>Bytes of an id (<c>MEGAMOE_NCCL_UNIQUE_ID_BYTES</c>).</summary>
    public const int Size = MegaMoeEpConfig.NcclUniqueIdBytes;

    private readonly byte[] _bytes;

    private NcclUniqueId(byte[] bytes) => _bytes = bytes;

    /// <summary>A new id (<c>ncclGetUniqueId</c>).</summary>
    /// <exception cref="MegaMoeBackendUnavailableException">NCCL cannot be used here; the message says why.</exception>
    public static unsafe NcclUniqueId Create()
    {
        NativeLibraryGuard.EnsureLoaded();
        var bytes = new byte[Size];
        fixed (byte* id = bytes)
        {
            NativeMethods.megamoe_nccl_get_unique_id(id, Size).ThrowIfFailed();
        }

        return new NcclUniqueId(bytes);
    }

    /// <summary>The id another process made, from its <see cref="ToArray"/>.</summary>
    /// <param name="bytes">Exactly <see cref="Size"/> bytes.</param>
    /// <exception cref="ArgumentException">The length is not <see cref="Size"/>.</exception>
    public static NcclUniqueId FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
        {
            throw new ArgumentException($"An NCCL unique id has {Size} bytes; got {bytes.Length}.", nameof(bytes));
        }

        return new NcclUniqueId(bytes.ToArray());
    }

    /// <summary>A copy of the id's bytes, to send to the other processes.</summary>
    public byte[] ToArray() => (byte[])_bytes.Clone();

    internal ReadOnlySpan<byte> Bytes => _bytes;
}
