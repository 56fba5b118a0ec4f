using MegaMoe.Interop;

namespace MegaMoe;

/// <summary>Milliseconds of an <see cref="EpMoeLayer"/>'s last forward on this rank.</summary>
/// <param name="DispatchMilliseconds">Quantize, pack, exchange and unpack.</param>
/// <param name="ComputeMilliseconds">The rank's experts on the tokens it received.</param>
/// <param name="CombineMilliseconds">Return the results, exchange and combine.</param>
public readonly record struct EpTimings(double DispatchMilliseconds, double ComputeMilliseconds, double CombineMilliseconds)
{
    /// <summary>The three together.</summary>
    public double TotalMilliseconds => DispatchMilliseconds + ComputeMilliseconds + CombineMilliseconds;
}

/// <summary>
/// The MoE layer over the ranks of an expert-parallel group (docs/EP.md): each rank holds its experts' weights; a
/// forward quantizes this rank's tokens, sends them to the ranks owning their experts, computes the tokens it
/// received with its experts and combines the results in a fixed order. The output equals <see cref="MoeLayer"/> over
/// all experts up to the order in which a token's slot results are added in float32 (bitwise for one rank). Creation and
/// <see cref="Forward"/> are collective: every rank calls them, in the same order.
/// </summary>
public sealed class EpMoeLayer : IDisposable
{
    private readonly EpLayerHandle _handle;

    private EpMoeLayer(EpLayerHandle handle, EpConfig config)
    {
        _handle = handle;
        Config = config;
    }

    /// <summary>The configuration the layer was created with.</summary>
    public EpConfig Config { get; }

    /// <summary>
    /// The dispatch, compute and combine times of the last successful <see cref="Forward"/> (device time on CUDA, which
    /// waits for the forward; host wall clock on the CPU).
    /// </summary>
    /// <exception cref="MegaMoeInvalidArgumentException">
    /// <see cref="EpConfig.RecordTimings"/> was not set, or no forward has succeeded yet.
    /// </exception>
    public EpTimings Timings
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            NativeMethods.megamoe_ep_layer_get_timings(_handle, out double dispatch, out double compute, out double combine)
                .ThrowIfFailed();
            return new EpTimings(dispatch, compute, combine);
        }
    }

    /// <summary>
    /// Creates this rank's part of the layer, copying and preparing its experts' weights; collective, it fails on every
    /// rank alike if any rank's part is wrong.
    /// </summary>
    /// <param name="communicator">This rank's endpoint.</param>
    /// <param name="config">The group's shape and math, and this rank's experts.</param>
    /// <param name="w13">[local experts, 2I, H], as <see cref="MoeLayer.Create"/> takes it.</param>
    /// <param name="w13Scales">[local experts, 2I/128, H/128] for FP8 <paramref name="w13"/>, else <see langword="null"/>.</param>
    /// <param name="w2">[local experts, H, I].</param>
    /// <param name="w2Scales">[local experts, H/128, I/128] for FP8 <paramref name="w2"/>, else <see langword="null"/>.</param>
    /// <param name="stream">The CUDA stream; 0 is the legacy default stream.</param>
    /// <param name="progress">Receives the fraction of this rank's weight preparation done.</param>
    /// <param name="cancellationToken">Stops this rank's weight preparation; then creation fails on every rank.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">
    /// A value or tensor of this rank or another is invalid, or the ranks disagree (the message names the rank).
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public static unsafe EpMoeLayer Create(
        EpCommunicator communicator, EpConfig config, DeviceTensor w13, DeviceTensor? w13Scales, DeviceTensor w2,
        DeviceTensor? w2Scales, nint stream = default, IProgress<double>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(config);
        MegaMoeTensor t13 = TensorArgs.Required(w13), t13s = TensorArgs.Optional(w13Scales);
        MegaMoeTensor t2 = TensorArgs.Required(w2), t2s = TensorArgs.Optional(w2Scales);
        using var lease = new TensorLease(w13, w13Scales, w2, w2Scales);
        using ProgressBridge? bridge = ProgressBridge.For(progress, cancellationToken);
        MegaMoeEpConfig native = config.ToNative(bridge);
        MegaMoeStatus status = NativeMethods.megamoe_ep_layer_create(
            communicator.Handle, &native, &t13, w13Scales is null ? null : &t13s, &t2, w2Scales is null ? null : &t2s,
            stream, out EpLayerHandle handle);
        ProgressBridge.ThrowIfCreateFailed(status, bridge, handle);
        return new EpMoeLayer(handle, config);
    }

    /// <summary>Runs the layer on this rank's tokens; T = 0 is valid (the rank still serves its peers).</summary>
    /// <param name="x">[T, H] <see cref="DataType.BFloat16"/>, or <see cref="DataType.Float8E4M3"/> with <paramref name="xScales"/>; T &lt;= <see cref="EpConfig.MaxTokensPerRank"/>.</param>
    /// <param name="xScales">[T, H/128] <see cref="DataType.Float32"/> for FP8 <paramref name="x"/>, else <see langword="null"/>.</param>
    /// <param name="topkIdx">[T, top_k] <see cref="DataType.Int32"/> or <see cref="DataType.Int64"/> GLOBAL experts; -1 drops a slot.</param>
    /// <param name="topkWeights">[T, top_k] <see cref="DataType.Float32"/>.</param>
    /// <param name="y">[T, H] <see cref="DataType.BFloat16"/> output.</param>
    /// <param name="expertCounts">
    /// <see langword="null"/>, or [local experts] <see cref="DataType.Int32"/> incremented by the slots of all ranks routed
    /// to this rank's experts.
    /// </param>
    /// <param name="stream">The CUDA stream; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">
    /// A tensor is wrong or an expert is out of range; this rank still served its peers and wrote nothing.
    /// </exception>
    public unsafe void Forward(
        DeviceTensor x, DeviceTensor? xScales, DeviceTensor topkIdx, DeviceTensor topkWeights, DeviceTensor y,
        DeviceTensor? expertCounts = null, nint stream = default)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        MegaMoeTensor tx = TensorArgs.Required(x), txs = TensorArgs.Optional(xScales);
        MegaMoeTensor ti = TensorArgs.Required(topkIdx), tw = TensorArgs.Required(topkWeights);
        MegaMoeTensor ty = TensorArgs.Required(y), tc = TensorArgs.Optional(expertCounts);
        using var lease = new TensorLease(x, xScales, topkIdx, topkWeights, y, expertCounts);
        NativeMethods.megamoe_ep_layer_forward(
            _handle, &tx, xScales is null ? null : &txs, &ti, &tw, &ty, expertCounts is null ? null : &tc, stream)
            .ThrowIfFailed();
    }

    /// <summary>Frees this rank's part of the layer (once a forward in flight has returned); harmless when repeated.</summary>
    public void Dispose() => _handle.Dispose();
}
