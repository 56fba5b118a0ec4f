using MegaMoe.Interop;

namespace MegaMoe;

/// <summary>
/// A fused FP8 Mixture-of-Experts layer with prepared weights and a fixed workspace. Forward computes, per token,
/// <c>y[t] = sum_j w[t,j] * rsf * W2[e] . requant(act(W13[e] . quant(x[t])))</c> in the exact order of
/// docs/NUMERICS.md section 4. A layer runs one <see cref="Forward"/> at a time (it owns its workspace).
/// </summary>
public sealed class MoeLayer : IDisposable
{
    private readonly MoeLayerHandle _handle;

    private MoeLayer(MoeLayerHandle handle, MoeLayerOptions options, long workspaceBytes)
    {
        _handle = handle;
        Options = options;
        WorkspaceBytes = workspaceBytes;
    }

    /// <summary>The options the layer was created with.</summary>
    public MoeLayerOptions Options { get; }

    /// <summary>Bytes of workspace the layer holds, fixed at creation.</summary>
    public long WorkspaceBytes { get; }

    /// <summary>
    /// Creates a layer, copying and preparing the weights: the caller's tensors may be disposed afterwards. Weights
    /// are FP8 with float32 128x128 block scales, or BF16/FP32 without scales (then quantized by the library).
    /// </summary>
    /// <param name="context">The context to run on.</param>
    /// <param name="options">Shape and activation.</param>
    /// <param name="w13">[E, 2I, H]: rows [gate; up] per expert (interleaved if <see cref="MoeLayerOptions.W13Interleaved"/>).</param>
    /// <param name="w13Scales">[E, 2I/128, H/128] <see cref="DataType.Float32"/> for FP8 <paramref name="w13"/>, else <see langword="null"/>.</param>
    /// <param name="w2">[E, H, I].</param>
    /// <param name="w2Scales">[E, H/128, I/128] <see cref="DataType.Float32"/> for FP8 <paramref name="w2"/>, else <see langword="null"/>.</param>
    /// <param name="stream">The CUDA stream weight preparation is enqueued on; 0 is the legacy default stream.</param>
    /// <param name="progress">Receives the fraction of weight preparation done, from the thread doing it.</param>
    /// <param name="cancellationToken">Stops weight preparation; nothing is created then.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">An option or a tensor is invalid.</exception>
    /// <exception cref="MegaMoeUnsupportedException">
    /// The context is on <see cref="Backend.Cuda"/>: the CUDA backend does not implement the MoE layer yet; use
    /// <see cref="Backend.Cpu"/>.
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public static unsafe MoeLayer Create(
        MoeContext context, MoeLayerOptions options, DeviceTensor w13, DeviceTensor? w13Scales, DeviceTensor w2,
        DeviceTensor? w2Scales, nint stream = default, IProgress<double>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        cancellationToken.ThrowIfCancellationRequested();
        MegaMoeTensor t13 = TensorArgs.Required(w13), t13s = TensorArgs.Optional(w13Scales);
        MegaMoeTensor t2 = TensorArgs.Required(w2), t2s = TensorArgs.Optional(w2Scales);
        using var lease = new TensorLease(w13, w13Scales, w2, w2Scales);

        using ProgressBridge? bridge = ProgressBridge.For(progress, cancellationToken);
        var config = new MegaMoeMoeConfig
        {
            StructSize = (uint)sizeof(MegaMoeMoeConfig),
            Flags = (options.W13Interleaved ? MegaMoeMoeConfig.W13InterleavedFlag : 0)
                | (options.ExpertSpecializationUp ? MegaMoeMoeConfig.ExpertSpecializationUpFlag : 0)
                | (options.ExpertSpecializationDown ? MegaMoeMoeConfig.ExpertSpecializationDownFlag : 0),
            NumExperts = options.Experts,
            TopK = options.TopK,
            Hidden = options.Hidden,
            Intermediate = options.Intermediate,
            MaxTokens = options.MaxTokens,
            ActivationAlpha = options.ActivationAlpha,
            ActivationBeta = options.ActivationBeta,
            ActivationClamp = options.ActivationClamp,
            RoutedScalingFactor = options.RoutedScalingFactor,
            Progress = bridge is not null ? ProgressBridge.Callback : null,
            ProgressUserData = bridge?.UserData ?? 0,
        };
        MegaMoeStatus status = NativeMethods.megamoe_moe_layer_create(
            context.Handle, &config, &t13, w13Scales is null ? null : &t13s, &t2, w2Scales is null ? null : &t2s, stream,
            out MoeLayerHandle handle);
        ProgressBridge.ThrowIfCreateFailed(status, bridge, handle);

        try
        {
            NativeMethods.megamoe_moe_layer_get_workspace_size(handle, out long workspaceBytes).ThrowIfFailed();
            return new MoeLayer(handle, options, workspaceBytes);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Runs the layer on a batch of tokens; T = 0 does nothing.</summary>
    /// <param name="x">[T, H] <see cref="DataType.BFloat16"/>, or <see cref="DataType.Float8E4M3"/> with <paramref name="xScales"/>.</param>
    /// <param name="xScales">[T, H/128] <see cref="DataType.Float32"/> for FP8 <paramref name="x"/>, else <see langword="null"/>.</param>
    /// <param name="topkIdx">[T, top_k] <see cref="DataType.Int32"/> or <see cref="DataType.Int64"/>; -1 drops a slot.</param>
    /// <param name="topkWeights">[T, top_k] <see cref="DataType.Float32"/>.</param>
    /// <param name="y">[T, H] <see cref="DataType.BFloat16"/> output.</param>
    /// <param name="expertCounts">
    /// <see langword="null"/>, or [E] <see cref="DataType.Int32"/> incremented by the number of slots routed to each expert.
    /// </param>
    /// <param name="numTokens">
    /// <see langword="null"/>, or [1] <see cref="DataType.Int32"/> in device memory holding the number of valid tokens
    /// (&lt;= T); later tokens are not read and their outputs not written.
    /// </param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device, or an index is out of range.</exception>
    public unsafe void Forward(
        DeviceTensor x, DeviceTensor? xScales, DeviceTensor topkIdx, DeviceTensor topkWeights, DeviceTensor y,
        DeviceTensor? expertCounts = null, DeviceTensor? numTokens = null, nint stream = default)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        MegaMoeTensor tx = TensorArgs.Required(x), txs = TensorArgs.Optional(xScales);
        MegaMoeTensor ti = TensorArgs.Required(topkIdx), tw = TensorArgs.Required(topkWeights);
        MegaMoeTensor ty = TensorArgs.Required(y);
        MegaMoeTensor tc = TensorArgs.Optional(expertCounts), tn = TensorArgs.Optional(numTokens);
        using var lease = new TensorLease(x, xScales, topkIdx, topkWeights, y, expertCounts, numTokens);
        NativeMethods.megamoe_moe_layer_forward(
            _handle, &tx, xScales is null ? null : &txs, &ti, &tw, &ty, expertCounts is null ? null : &tc,
            numTokens is null ? null : &tn, stream).ThrowIfFailed();
    }

    /// <summary>Frees the layer's weights and workspace (once a forward in flight has returned); harmless when repeated.</summary>
    public void Dispose() => _handle.Dispose();
}
