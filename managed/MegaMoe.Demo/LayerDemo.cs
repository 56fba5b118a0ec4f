using System.Diagnostics;

namespace MegaMoe.Demo;

/// <summary>One run of the demo on one backend: create the layer, time forward passes, check against float64.</summary>
internal static class LayerDemo
{
    /// <summary>Runs the demo on <paramref name="backend"/>; returns the exit code.</summary>
    public static int Run(DemoOptions o, Backend backend, double errorLimit)
    {
        using MoeContext context = MoeContext.Create(backend);
        DeviceInfo device = context.DeviceInfo;
        Console.WriteLine(device.Backend == Backend.Cpu
            ? $"  backend    CPU - {device.Name}"
            : $"  backend    CUDA - {device.Name}, compute capability {device.ComputeCapability}, {device.MultiprocessorCount} SMs");

        var problem = new SyntheticMoe(o);
        var layerOptions = new MoeLayerOptions
        {
            Experts = o.Experts,
            TopK = o.TopK,
            Hidden = o.Hidden,
            Intermediate = o.Intermediate,
            MaxTokens = Math.Max(o.Tokens, 1),
            RoutedScalingFactor = DemoOptions.RoutedScalingFactor,
        };
        using MoeLayer layer = CreateLayer(context, layerOptions, problem);
        Console.WriteLine($"  workspace  {layer.WorkspaceBytes / 1e6:F1} MB");

        using DeviceTensor x = DeviceTensor.Allocate(context, DataType.BFloat16, o.Tokens, o.Hidden);
        using DeviceTensor topkIdx = DeviceTensor.Allocate(context, DataType.Int32, o.Tokens, o.TopK);
        using DeviceTensor topkWeights = DeviceTensor.Allocate(context, DataType.Float32, o.Tokens, o.TopK);
        using DeviceTensor y = DeviceTensor.Allocate(context, DataType.BFloat16, o.Tokens, o.Hidden);
        x.CopyFrom<BFloat16>(problem.X);
        topkIdx.CopyFrom<int>(problem.TopkIdx);
        topkWeights.CopyFrom<float>(problem.TopkWeights);

        var seconds = new List<double>();
        var stopwatch = new Stopwatch();
        for (int run = 0; run < o.Runs; run++)
        {
            stopwatch.Restart();
            layer.Forward(x, null, topkIdx, topkWeights, y);
            context.Synchronize();
            seconds.Add(stopwatch.Elapsed.TotalSeconds);
        }

        seconds.Sort();
        Console.WriteLine(
            $"  forward    median {Milliseconds(seconds[seconds.Count / 2])} over {o.Runs} runs " +
            $"(min {Milliseconds(seconds[0])}, max {Milliseconds(seconds[^1])})");

        stopwatch.Restart();
        (double[] expected, int expertsUsed) = Float64Reference.Forward(o, problem);
        double[] actual = Array.ConvertAll(y.ToArray<BFloat16>(), v => (double)(float)v);
        double error = Float64Reference.Difference(actual, expected);
        bool ok = error <= errorLimit;
        Console.WriteLine($"  reference  float64 over the {expertsUsed} experts used, in {stopwatch.Elapsed.TotalSeconds:F2} s");
        Console.WriteLine(
            $"  error      1 - 2<y,ref>/(|y|^2+|ref|^2) = {error:0.00e+0} (limit {errorLimit:0e+0}): {(ok ? "OK" : "TOO LARGE")}");
        return ok ? 0 : 1;
    }

    // Weights are generated one expert at a time per thread straight into the device tensors; those are freed as soon
    // as the layer has copied them, so the weights are held twice only during creation.
    private static MoeLayer CreateLayer(MoeContext context, MoeLayerOptions options, SyntheticMoe problem)
    {
        var stopwatch = Stopwatch.StartNew();
        long e = options.Experts, h = options.Hidden, i = options.Intermediate;
        using DeviceTensor w13 = DeviceTensor.Allocate(context, DataType.Float8E4M3, e, 2 * i, h);
        using DeviceTensor w2 = DeviceTensor.Allocate(context, DataType.Float8E4M3, e, h, i);
        using DeviceTensor w13Scales = DeviceTensor.Allocate(
            context, DataType.Float32, e, SyntheticMoe.CeilDiv(2 * i, 128), SyntheticMoe.CeilDiv(h, 128));
        using DeviceTensor w2Scales = DeviceTensor.Allocate(
            context, DataType.Float32, e, SyntheticMoe.CeilDiv(h, 128), SyntheticMoe.CeilDiv(i, 128));
        Parallel.For(
            0,
            options.Experts,
            () => new byte[Math.Max(problem.W13ExpertBytes, problem.W2ExpertBytes)],
            (expert, _, buffer) =>
            {
                Span<byte> w13Expert = buffer.AsSpan(0, (int)problem.W13ExpertBytes);
                problem.W13(expert, w13Expert);
                w13.CopyFrom<byte>(expert * problem.W13ExpertBytes, w13Expert);
                Span<byte> w2Expert = buffer.AsSpan(0, (int)problem.W2ExpertBytes);
                problem.W2(expert, w2Expert);
                w2.CopyFrom<byte>(expert * problem.W2ExpertBytes, w2Expert);
                return buffer;
            },
            _ => { });
        w13Scales.CopyFrom<float>(problem.W13Scales);
        w2Scales.CopyFrom<float>(problem.W2Scales);
        Console.WriteLine(
            $"  weights    FP8 E4M3, {(w13.SizeInBytes + w2.SizeInBytes) / 1e9:F2} GB, generated and copied in " +
            $"{stopwatch.Elapsed.TotalSeconds:F2} s");

        stopwatch.Restart();
        MoeLayer layer = MoeLayer.Create(context, options, w13, w13Scales, w2, w2Scales);
        context.Synchronize();
        Console.WriteLine($"  layer      created in {stopwatch.Elapsed.TotalSeconds:F2} s");
        return layer;
    }

    private static string Milliseconds(double seconds) => $"{seconds * 1e3:F1} ms";
}
