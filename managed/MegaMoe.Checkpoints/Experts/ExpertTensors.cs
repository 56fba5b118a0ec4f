namespace MegaMoe.Checkpoints.Experts;

/// <summary>
/// All experts' weights of an <see cref="IExpertWeights"/> copied into tensors of a context, in the layout
/// <see cref="MoeLayer.Create"/> takes: w13 [E, 2I, H] and w2 [E, H, I] FP8 with [E, ., .] float32 scales. The layer
/// copies what it needs, so dispose these right after creating it: the weights are held twice only during creation.
/// </summary>
public sealed class ExpertTensors : IDisposable
{
    private ExpertTensors(DeviceTensor w13, DeviceTensor w13Scales, DeviceTensor w2, DeviceTensor w2Scales, bool interleaved)
    {
        W13 = w13;
        W13Scales = w13Scales;
        W2 = w2;
        W2Scales = w2Scales;
        W13Interleaved = interleaved;
    }

    /// <summary>[E, 2I, H] FP8.</summary>
    public DeviceTensor W13 { get; }

    /// <summary>[E, ceil(2I/128), ceil(H/128)] float32.</summary>
    public DeviceTensor W13Scales { get; }

    /// <summary>[E, H, I] FP8.</summary>
    public DeviceTensor W2 { get; }

    /// <summary>[E, ceil(H/128), ceil(I/128)] float32.</summary>
    public DeviceTensor W2Scales { get; }

    /// <summary>Whether w13's rows are gate/up interleaved.</summary>
    public bool W13Interleaved { get; }

    /// <summary>Bytes of the four tensors.</summary>
    public long SizeInBytes => W13.SizeInBytes + W13Scales.SizeInBytes + W2.SizeInBytes + W2Scales.SizeInBytes;

    /// <summary>
    /// Copies every expert of <paramref name="weights"/> into new tensors of <paramref name="context"/>, several experts
    /// at a time (one host buffer of one expert per worker).
    /// </summary>
    /// <param name="context">Where the tensors live.</param>
    /// <param name="weights">The source.</param>
    /// <param name="progress">Receives the fraction of experts copied, from worker threads.</param>
    /// <param name="cancellationToken">Stops the copy (throws <see cref="OperationCanceledException"/>).</param>
    public static ExpertTensors Upload(
        MoeContext context, IExpertWeights weights, IProgress<double>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(weights);
        long e = weights.Experts, h = weights.Hidden, i = weights.Intermediate;
        (long r13, long c13) = weights.W13ScaleShape();
        (long r2, long c2) = weights.W2ScaleShape();
        var tensors = new List<DeviceTensor>(4);
        try
        {
            tensors.Add(DeviceTensor.Allocate(context, DataType.Float8E4M3, e, 2 * i, h));
            tensors.Add(DeviceTensor.Allocate(context, DataType.Float32, e, r13, c13));
            tensors.Add(DeviceTensor.Allocate(context, DataType.Float8E4M3, e, h, i));
            tensors.Add(DeviceTensor.Allocate(context, DataType.Float32, e, r2, c2));
            var result = new ExpertTensors(tensors[0], tensors[1], tensors[2], tensors[3], weights.W13Interleaved);
            result.Fill(weights, progress, cancellationToken);
            return result;
        }
        catch
        {
            tensors.ForEach(t => t.Dispose());
            throw;
        }
    }

    /// <summary>Layer options matching these weights (SwiGLU, no clamp).</summary>
    public static MoeLayerOptions LayerOptions(IExpertWeights weights, int topK, long maxTokens, float routedScalingFactor)
    {
        ArgumentNullException.ThrowIfNull(weights);
        return new MoeLayerOptions
        {
            Experts = weights.Experts,
            TopK = topK,
            Hidden = weights.Hidden,
            Intermediate = weights.Intermediate,
            MaxTokens = maxTokens,
            RoutedScalingFactor = routedScalingFactor,
            W13Interleaved = weights.W13Interleaved,
        };
    }

    /// <inheritdoc />
    public void Dispose()
    {
        W13.Dispose();
        W13Scales.Dispose();
        W2.Dispose();
        W2Scales.Dispose();
    }

    private void Fill(IExpertWeights weights, IProgress<double>? progress, CancellationToken cancellationToken)
    {
        long w13Bytes = weights.W13ExpertBytes(), w2Bytes = weights.W2ExpertBytes();
        (long r13, long c13) = weights.W13ScaleShape();
        (long r2, long c2) = weights.W2ScaleShape();
        int done = 0;
        Parallel.For(
            0,
            weights.Experts,
            new ParallelOptions { CancellationToken = cancellationToken },
            () => (Codes: new byte[Math.Max(w13Bytes, w2Bytes)], Scales: new float[Math.Max(r13 * c13, r2 * c2)]),
            (expert, _, buffers) =>
            {
                Span<byte> w13 = buffers.Codes.AsSpan(0, (int)w13Bytes);
                weights.ReadW13(expert, w13);
                W13.CopyFrom<byte>(expert * w13Bytes, w13);
                Span<byte> w2 = buffers.Codes.AsSpan(0, (int)w2Bytes);
                weights.ReadW2(expert, w2);
                W2.CopyFrom<byte>(expert * w2Bytes, w2);
                Span<float> s13 = buffers.Scales.AsSpan(0, (int)(r13 * c13));
                weights.ReadW13Scales(expert, s13);
                W13Scales.CopyFrom<float>(expert * r13 * c13, s13);
                Span<float> s2 = buffers.Scales.AsSpan(0, (int)(r2 * c2));
                weights.ReadW2Scales(expert, s2);
                W2Scales.CopyFrom<float>(expert * r2 * c2, s2);
                progress?.Report((double)Interlocked.Increment(ref done) / weights.Experts);
                return buffers;
            },
            _ => { });
    }
}
