using System.Diagnostics;
using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Reference;
using MegaMoe.Checkpoints.Synthetic;

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

        var problem = new SyntheticMoe(o.Experts, o.Hidden, o.Intermediate, o.Seed);
        var inputs = RoutedInputs.Random(o.Tokens, o.Hidden, o.Experts, o.TopK, o.Seed);
        MoeLayerOptions layerOptions = ExpertTensors.LayerOptions(problem, o.TopK, Math.Max(o.Tokens, 1), DemoOptions.RoutedScalingFactor);
        using MoeLayer layer = CreateLayer(context, layerOptions, problem);
        Console.WriteLine($"  workspace  {layer.WorkspaceBytes / 1e6:F1} MB");

        using DeviceTensor x = DeviceTensor.Allocate(context, DataType.BFloat16, o.Tokens, o.Hidden);
        using DeviceTensor topkIdx = DeviceTensor.Allocate(context, DataType.Int32, o.Tokens, o.TopK);
        using DeviceTensor topkWeights = DeviceTensor.Allocate(context, DataType.Float32, o.Tokens, o.TopK);
        using DeviceTensor y = DeviceTensor.Allocate(context, DataType.BFloat16, o.Tokens, o.Hidden);
        x.CopyFrom<BFloat16>(inputs.X);
        topkIdx.CopyFrom<int>(inputs.TopkIdx);
        topkWeights.CopyFrom<float>(inputs.TopkWeights);

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
        (double[] expected, int expertsUsed) = Float64Reference.Forward(problem, inputs, DemoOptions.RoutedScalingFactor);
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
        using ExpertTensors weights = ExpertTensors.Upload(context, problem);
        Console.WriteLine(
            $"  weights    FP8 E4M3, {(weights.W13.SizeInBytes + weights.W2.SizeInBytes) / 1e9:F2} GB, generated and copied in " +
            $"{stopwatch.Elapsed.TotalSeconds:F2} s");

        stopwatch.Restart();
        MoeLayer layer = MoeLayer.Create(context, options, weights.W13, weights.W13Scales, weights.W2, weights.W2Scales);
        context.Synchronize();
        Console.WriteLine($"  layer      created in {stopwatch.Elapsed.TotalSeconds:F2} s");
        return layer;
    }

    private static string Milliseconds(double seconds) => $"{seconds * 1e3:F1} ms";
}
