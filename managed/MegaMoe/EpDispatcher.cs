using MegaMoe.Interop;

namespace MegaMoe;

/// <summary>
/// Expert-parallel dispatch and combine on their own (docs/EP.md), for a framework that runs its own expert compute
/// in between: <see cref="Dispatch"/> (one row per received token, local top-k) or <see cref="DispatchExpanded"/>
/// (one row per received slot, sorted by local expert: the layout of <see cref="MoeContext.GemmGroupedOffsets"/>),
/// then <see cref="Combine"/> of the results. Every call is collective (all ranks, same order); a dispatcher holds
/// one dispatch until its combine.
/// </summary>
public sealed class EpDispatcher : IDisposable
{
    private readonly EpDispatcherHandle _handle;

    private EpDispatcher(EpDispatcherHandle handle, EpConfig config)
    {
        _handle = handle;
        Config = config;
        NativeMethods.megamoe_ep_dispatcher_get_sizes(handle, out long tokens, out long rows).ThrowIfFailed();
        MaxReceivedTokens = tokens;
        MaxReceivedRowsExpanded = rows;
    }

    /// <summary>The configuration the dispatcher was created with.</summary>
    public EpConfig Config { get; }

    /// <summary>R_max = W * <see cref="EpConfig.MaxTokensPerRank"/>: the rows of <see cref="Dispatch"/>'s outputs.</summary>
    public long MaxReceivedTokens { get; }

    /// <summary>R_max * top-k: the rows of <see cref="DispatchExpanded"/>'s outputs.</summary>
    public long MaxReceivedRowsExpanded { get; }

    /// <summary>Creates this rank's dispatcher; collective, it fails on every rank alike if any rank's part is wrong.</summary>
    /// <param name="communicator">This rank's endpoint.</param>
    /// <param name="config">The group's shape and this rank's experts.</param>
    /// <param name="stream">The CUDA stream of the creation handshake; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">
    /// This rank's config is invalid, or another rank's is, or the ranks disagree, or their ranges do not partition the
    /// experts (the message names the rank and the field).
    /// </exception>
    public static unsafe EpDispatcher Create(EpCommunicator communicator, EpConfig config, nint stream = default)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(config);
        MegaMoeEpConfig native = config.ToNative(null);
        NativeMethods.megamoe_ep_dispatcher_create(communicator.Handle, &native, stream, out EpDispatcherHandle handle)
            .ThrowIfFailed(handle);
        try
        {
            return new EpDispatcher(handle, config);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends this rank's tokens to the ranks owning their experts and receives, source rank by source rank, every token
    /// with a slot on this rank; rows past <paramref name="receivedTokenCount"/> are not written.
    /// </summary>
    /// <param name="x">[T, H] <see cref="DataType.BFloat16"/>, or <see cref="DataType.Float8E4M3"/> with <paramref name="xScales"/>; T &lt;= <see cref="EpConfig.MaxTokensPerRank"/>.</param>
    /// <param name="xScales">[T, H/128] <see cref="DataType.Float32"/> for FP8 <paramref name="x"/>, else <see langword="null"/>.</param>
    /// <param name="topkIdx">[T, top_k] <see cref="DataType.Int32"/> or <see cref="DataType.Int64"/> GLOBAL experts; -1 drops a slot.</param>
    /// <param name="topkWeights">[T, top_k] <see cref="DataType.Float32"/>.</param>
    /// <param name="receivedX">[<see cref="MaxReceivedTokens"/>, H] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="receivedXScales">[<see cref="MaxReceivedTokens"/>, H/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="receivedTopkIdx">[<see cref="MaxReceivedTokens"/>, top_k] <see cref="DataType.Int32"/>: LOCAL experts, -1 for slots elsewhere.</param>
    /// <param name="receivedTopkWeights">[<see cref="MaxReceivedTokens"/>, top_k] <see cref="DataType.Float32"/>.</param>
    /// <param name="receivedTokenCount">[1] <see cref="DataType.Int32"/>: the rows received.</param>
    /// <param name="stream">The CUDA stream; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">
    /// A tensor is wrong or an expert is out of range; this rank still served its peers and wrote nothing.
    /// </exception>
    public unsafe void Dispatch(
        DeviceTensor x, DeviceTensor? xScales, DeviceTensor topkIdx, DeviceTensor topkWeights, DeviceTensor receivedX,
        DeviceTensor receivedXScales, DeviceTensor receivedTopkIdx, DeviceTensor receivedTopkWeights,
        DeviceTensor receivedTokenCount, nint stream = default)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        MegaMoeTensor tx = TensorArgs.Required(x), txs = TensorArgs.Optional(xScales);
        MegaMoeTensor ti = TensorArgs.Required(topkIdx), tw = TensorArgs.Required(topkWeights);
        MegaMoeTensor rx = TensorArgs.Required(receivedX), rxs = TensorArgs.Required(receivedXScales);
        MegaMoeTensor ri = TensorArgs.Required(receivedTopkIdx), rw = TensorArgs.Required(receivedTopkWeights);
        MegaMoeTensor rn = TensorArgs.Required(receivedTokenCount);
        using var lease = new TensorLease(
            x, xScales, topkIdx, topkWeights, receivedX, receivedXScales, receivedTopkIdx, receivedTopkWeights,
            receivedTokenCount);
        NativeMethods.megamoe_ep_dispatch(
            _handle, &tx, xScales is null ? null : &txs, &ti, &tw, &rx, &rxs, &ri, &rw, &rn, stream).ThrowIfFailed();
    }

    /// <summary>
    /// As <see cref="Dispatch"/>, but one row per received (token, local slot), sorted by local expert and stable in
    /// (source rank, token, slot); rows past the last offset are not written.
    /// </summary>
    /// <param name="x">As for <see cref="Dispatch"/>.</param>
    /// <param name="xScales">As for <see cref="Dispatch"/>.</param>
    /// <param name="topkIdx">As for <see cref="Dispatch"/>.</param>
    /// <param name="topkWeights">As for <see cref="Dispatch"/>; <see cref="Combine"/> applies them.</param>
    /// <param name="receivedX">[<see cref="MaxReceivedRowsExpanded"/>, H] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="receivedXScales">[<see cref="MaxReceivedRowsExpanded"/>, H/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="receivedOffsets">[local experts + 1] <see cref="DataType.Int32"/>: local expert e owns rows [offsets[e], offsets[e+1]).</param>
    /// <param name="stream">The CUDA stream; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">As for <see cref="Dispatch"/>.</exception>
    public unsafe void DispatchExpanded(
        DeviceTensor x, DeviceTensor? xScales, DeviceTensor topkIdx, DeviceTensor topkWeights, DeviceTensor receivedX,
        DeviceTensor receivedXScales, DeviceTensor receivedOffsets, nint stream = default)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        MegaMoeTensor tx = TensorArgs.Required(x), txs = TensorArgs.Optional(xScales);
        MegaMoeTensor ti = TensorArgs.Required(topkIdx), tw = TensorArgs.Required(topkWeights);
        MegaMoeTensor rx = TensorArgs.Required(receivedX), rxs = TensorArgs.Required(receivedXScales);
        MegaMoeTensor ro = TensorArgs.Required(receivedOffsets);
        using var lease = new TensorLease(x, xScales, topkIdx, topkWeights, receivedX, receivedXScales, receivedOffsets);
        NativeMethods.megamoe_ep_dispatch_expanded(
            _handle, &tx, xScales is null ? null : &txs, &ti, &tw, &rx, &rxs, &ro, stream).ThrowIfFailed();
    }

    /// <summary>
    /// Returns the results of the held dispatch's rows to their ranks and combines this rank's tokens:
    /// <c>y[t] = bf16(sum over ranks of the rows of token t)</c>.
    /// </summary>
    /// <param name="partial">
    /// <see cref="DataType.BFloat16"/> or <see cref="DataType.Float32"/>: after <see cref="Dispatch"/>,
    /// [<see cref="MaxReceivedTokens"/>, H], one row per received token (weighted and summed over its local slots);
    /// after <see cref="DispatchExpanded"/>, [<see cref="MaxReceivedRowsExpanded"/>, H], one row per slot, unweighted
    /// (each is multiplied by its top-k weight here).
    /// </param>
    /// <param name="y">[T, H] <see cref="DataType.BFloat16"/>, T of the dispatch.</param>
    /// <param name="stream">The CUDA stream; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">
    /// A tensor is wrong, there is no dispatch to combine, or a rank that got this rank's tokens failed; this rank
    /// still returned its peers' rows and wrote nothing.
    /// </exception>
    public unsafe void Combine(DeviceTensor partial, DeviceTensor y, nint stream = default)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        MegaMoeTensor tp = TensorArgs.Required(partial), ty = TensorArgs.Required(y);
        using var lease = new TensorLease(partial, y);
        NativeMethods.megamoe_ep_combine(_handle, &tp, &ty, stream).ThrowIfFailed();
    }

    /// <summary>Frees the dispatcher (once a call in flight has returned); harmless when repeated.</summary>
    public void Dispose() => _handle.Dispose();
}
