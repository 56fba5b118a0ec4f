using System.Diagnostics;
using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Synthetic;

namespace MegaMoe.Cli.Running;

/// <summary>
/// A MoE layer built from an <see cref="IExpertWeights"/> on one context, and the timing of its forward pass. Shared by
/// run and bench so that both measure the same thing: forward plus synchronize, inputs already on the device.
/// </summary>
internal sealed class LayerSession : IDisposable
{
    private readonly MoeContext _context;

    private LayerSession(MoeContext context, MoeLayer layer, IExpertWeights weights, double creationSeconds)
    {
        _context = context;
        Layer = layer;
        Weights = weights;
        CreationSeconds = creationSeconds;
    }

    public MoeLayer Layer { get; }

    public IExpertWeights Weights { get; }

    /// <summary>Seconds to copy the weights in and create the layer.</summary>
    public double CreationSeconds { get; }

    /// <summary>Uploads the experts and creates the layer; progress runs 0-0.5 for the copy and 0.5-1 for creation.</summary>
    public static LayerSession Create(
        MoeContext context, IExpertWeights weights, int topK, int maxTokens, float routedScalingFactor,
        ExpertSpecialization specialization, IProgress<double>? progress, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        MoeLayerOptions options = specialization.Apply(ExpertTensors.LayerOptions(weights, topK, Math.Max(maxTokens, 1), routedScalingFactor));
        MoeLayer layer;
        using (ExpertTensors tensors = ExpertTensors.Upload(
            context, weights, progress is null ? null : new Scaled(progress, 0, 0.5), cancellationToken))
        {
            layer = MoeLayer.Create(
                context, options, tensors.W13, tensors.W13Scales, tensors.W2, tensors.W2Scales,
                progress: progress is null ? null : new Scaled(progress, 0.5, 0.5), cancellationToken: cancellationToken);
        }

        context.Synchronize();
        return new LayerSession(context, layer, weights, stopwatch.Elapsed.TotalSeconds);
    }

    /// <summary>Runs <paramref name="warmup"/> untimed and <paramref name="runs"/> timed forward passes; returns the output of the last.</summary>
    public (Timing Timing, BFloat16[] Output) Time(RoutedInputs inputs, int warmup, int runs, Action? afterEachRun, CancellationToken cancellationToken)
    {
        long h = Weights.Hidden;
        using DeviceTensor x = DeviceTensor.Allocate(_context, DataType.BFloat16, inputs.Tokens, h);
        using DeviceTensor topkIdx = DeviceTensor.Allocate(_context, DataType.Int32, inputs.Tokens, inputs.TopK);
        using DeviceTensor topkWeights = DeviceTensor.Allocate(_context, DataType.Float32, inputs.Tokens, inputs.TopK);
        using DeviceTensor y = DeviceTensor.Allocate(_context, DataType.BFloat16, inputs.Tokens, h);
        x.CopyFrom<BFloat16>(inputs.X);
        topkIdx.CopyFrom<int>(inputs.TopkIdx);
        topkWeights.CopyFrom<float>(inputs.TopkWeights);

        var seconds = new List<double>(runs);
        var stopwatch = new Stopwatch();
        for (int run = 0; run < warmup + runs; run++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            stopwatch.Restart();
            Layer.Forward(x, null, topkIdx, topkWeights, y);
            _context.Synchronize();
            if (run >= warmup)
            {
                seconds.Add(stopwatch.Elapsed.TotalSeconds);
            }

            afterEachRun?.Invoke();
        }

        return (Timing.FromSamples(seconds), y.ToArray<BFloat16>());
    }

    public void Dispose() => Layer.Dispose();

    // Maps a sub-task's 0-1 onto [start, start + width] of the whole.
    private sealed class Scaled(IProgress<double> inner, double start, double width) : IProgress<double>
    {
        public void Report(double value) => inner.Report(start + (width * value));
    }
}
