using MegaMoe.Tests.Reference;
using MegaMoe.Tests.Support;

namespace MegaMoe.Tests.Scenarios;

/// <summary>How a scenario hands x and the weights to the layer.</summary>
public enum MoeInputForm
{
    /// <summary>FP8 weights with scales, BF16 x: the common serving path.</summary>
    Fp8Weights,

    /// <summary>FP8 weights with w13 gate/up interleaved by the library first.</summary>
    InterleavedFp8Weights,

    /// <summary>FP8 weights, and x already quantized by the library (FP8 x with scales).</summary>
    Fp8Activations,
}

/// <summary>Runs a <see cref="MoeProblem"/> through a <see cref="MoeLayer"/>.</summary>
public static class MoeLayerScenario
{
    /// <summary>y [T, H] as BF16 bits, and the expert counts the forward added.</summary>
    public static (ushort[] Y, int[] ExpertCounts) Run(
        MoeContext context, MoeProblem problem, MoeInputForm form = MoeInputForm.Fp8Weights, DataType indexType = DataType.Int64)
    {
        MoeLayerOptions options = problem.Options;
        using var scope = new DeviceScope(context);
        DeviceTensor w13 = scope.Upload(DataType.Float8E4M3, problem.W13.Codes, problem.W13.Shape(batched: true));
        if (form == MoeInputForm.InterleavedFp8Weights)
        {
            DeviceTensor interleaved = scope.Allocate(DataType.Float8E4M3, problem.W13.Shape(batched: true));
            context.InterleaveGateUp(w13, interleaved);
            w13 = interleaved;
            options = options with { W13Interleaved = true };
        }

        using MoeLayer layer = MoeLayer.Create(
            context,
            options,
            w13,
            scope.Upload(DataType.Float32, problem.W13.Scales, problem.W13.WeightScaleShape(batched: true)),
            scope.Upload(DataType.Float8E4M3, problem.W2.Codes, problem.W2.Shape(batched: true)),
            scope.Upload(DataType.Float32, problem.W2.Scales, problem.W2.WeightScaleShape(batched: true)));

        long tokens = problem.Tokens, hidden = options.Hidden, topK = options.TopK;
        DeviceTensor x = scope.Upload(DataType.BFloat16, problem.X, tokens, hidden);
        DeviceTensor? xScales = null;
        if (form == MoeInputForm.Fp8Activations)
        {
            DeviceTensor qx = scope.Allocate(DataType.Float8E4M3, tokens, hidden);
            xScales = scope.Allocate(DataType.Float32, tokens, hidden / 128);
            context.QuantizeActivations(x, qx, xScales);
            x = qx;
        }

        DeviceTensor topkIdx = indexType == DataType.Int64
            ? scope.Upload(DataType.Int64, problem.TopkIdx, tokens, topK)
            : scope.Upload(DataType.Int32, Array.ConvertAll(problem.TopkIdx, i => (int)i), tokens, topK);
        DeviceTensor y = scope.Filled(DataType.BFloat16, 0xAB, tokens, hidden);

        // Non-zero starting counts: the forward must add to them, not overwrite them.
        int[] initialCounts = InitialCounts(options.Experts);
        DeviceTensor counts = scope.Upload(DataType.Int32, initialCounts, options.Experts);
        layer.Forward(x, xScales, topkIdx, scope.Upload(DataType.Float32, problem.TopkWeights, tokens, topK), y, counts);
        int[] added = counts.ToArray<int>();
        for (int e = 0; e < added.Length; e++)
        {
            added[e] -= initialCounts[e];
        }

        return (y.ToArray<ushort>(), added);
    }

    /// <summary>
    /// y [T, H] from a layer created from BF16 weights without scales, which the library quantizes itself; the
    /// problem's FP8 weights are ignored.
    /// </summary>
    public static ushort[] RunWithBf16Weights(MoeContext context, MoeProblem problem, ushort[] w13, ushort[] w2)
    {
        MoeLayerOptions o = problem.Options;
        using var scope = new DeviceScope(context);
        using MoeLayer layer = MoeLayer.Create(
            context,
            o,
            scope.Upload(DataType.BFloat16, w13, o.Experts, 2 * o.Intermediate, o.Hidden),
            null,
            scope.Upload(DataType.BFloat16, w2, o.Experts, o.Hidden, o.Intermediate),
            null);
        DeviceTensor y = scope.Allocate(DataType.BFloat16, problem.Tokens, o.Hidden);
        layer.Forward(
            scope.Upload(DataType.BFloat16, problem.X, problem.Tokens, o.Hidden),
            null,
            scope.Upload(DataType.Int64, problem.TopkIdx, problem.Tokens, o.TopK),
            scope.Upload(DataType.Float32, problem.TopkWeights, problem.Tokens, o.TopK),
            y);
        return y.ToArray<ushort>();
    }

    /// <summary>Distinct non-zero counts to start an expert_counts buffer from (1000, 1001, ...).</summary>
    public static int[] InitialCounts(int experts) => Enumerable.Range(1000, experts).ToArray();

    /// <summary>Slots routed to each expert.</summary>
    public static int[] ExpectedCounts(MoeProblem problem)
    {
        var counts = new int[problem.Options.Experts];
        foreach (long expert in problem.TopkIdx.Where(e => e >= 0))
        {
            counts[expert]++;
        }

        return counts;
    }
}
