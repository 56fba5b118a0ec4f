using MegaMoe.Tests.Reference;
using MegaMoe.Tests.Support;

namespace MegaMoe.Tests.Scenarios;

/// <summary>
/// Quantization of activations (1 x 128 groups) or weights (128 x 128 blocks, [E, N, K] or [N, K]) from BF16 or FP32,
/// with inputs drawn to hit the interesting cases: group sizes that do not divide the shape, a zero row and a row
/// below the 1e-4 scale floor.
/// </summary>
public sealed record QuantizationScenario(
    bool Weights, int Batches, int Rows, int Columns, DataType InputType, QuantizationOptions Options, float[] X)
{
    private int GroupRows => Weights ? ReferenceQuantization.Block : 1;

    private long[] Shape => Weights && Batches > 1 ? [Batches, Rows, Columns] : [Rows, Columns];

    private long[] ScaleShape
    {
        get
        {
            long rowGroups = ReferenceQuantization.CeilDiv(Rows, GroupRows);
            long columnGroups = ReferenceQuantization.CeilDiv(Columns, ReferenceQuantization.Block);
            return Weights && Batches > 1 ? [Batches, rowGroups, columnGroups] : [rowGroups, columnGroups];
        }
    }

    /// <summary>Draws inputs; BF16 inputs are kept as their exactly representable float values.</summary>
    public static QuantizationScenario Random(
        Random random, bool weights, int batches, int rows, int columns, DataType inputType, QuantizationOptions options)
    {
        float[] x = random.NextActivations((long)batches * rows, columns);
        Array.Clear(x, 0, columns);
        for (int c = columns; c < Math.Min(2 * columns, x.Length); c++)
        {
            x[c] = random.NextNormal() * 1e-7f;
        }

        if (inputType == DataType.BFloat16)
        {
            x = Bf16.ToFloats(Bf16.FromFloats(x));
        }

        return new QuantizationScenario(weights, batches, rows, columns, inputType, options, x);
    }

    /// <summary>Quantizes on <paramref name="context"/>: (FP8 codes, scales).</summary>
    public (byte[] Q, float[] Scales) Run(MoeContext context)
    {
        using var scope = new DeviceScope(context);
        DeviceTensor x = InputType == DataType.BFloat16
            ? scope.Upload(DataType.BFloat16, Bf16.FromFloats(X), Shape)
            : scope.Upload(DataType.Float32, X, Shape);
        DeviceTensor q = scope.Allocate(DataType.Float8E4M3, Shape);
        DeviceTensor scales = scope.Allocate(DataType.Float32, ScaleShape);
        if (Weights)
        {
            context.QuantizeWeights(x, q, scales, Options);
        }
        else
        {
            context.QuantizeActivations(x, q, scales, Options);
        }

        return (q.ToArray<byte>(), scales.ToArray<float>());
    }

    /// <summary>The expected (codes, scales).</summary>
    public (byte[] Q, float[] Scales) Reference() =>
        ReferenceQuantization.Quantize(
            X, Weights ? Batches : 1, Weights ? Rows : Batches * Rows, Columns, GroupRows,
            Options.HasFlag(QuantizationOptions.Ue8m0Scales));
}

/// <summary>Dequantization of random FP8 codes (NaN included) with random scales, to BF16 or FP32.</summary>
public sealed record DequantizationScenario(
    bool Weights, int Batches, int Rows, int Columns, DataType OutputType, byte[] Q, float[] Scales)
{
    private int GroupRows => Weights ? ReferenceQuantization.Block : 1;

    private long[] Shape => Weights && Batches > 1 ? [Batches, Rows, Columns] : [Rows, Columns];

    /// <summary>Draws codes (every code, NaNs included) and scales.</summary>
    public static DequantizationScenario Random(
        Random random, bool weights, int batches, int rows, int columns, DataType outputType)
    {
        var q = new byte[batches * rows * columns];
        random.NextBytes(q);
        int rowGroups = ReferenceQuantization.CeilDiv(rows, weights ? ReferenceQuantization.Block : 1);
        int scaleCount = (weights ? batches : 1) * (weights ? rowGroups : batches * rows)
            * ReferenceQuantization.CeilDiv(columns, ReferenceQuantization.Block);
        float[] scales = new float[scaleCount];
        for (int i = 0; i < scales.Length; i++)
        {
            scales[i] = random.NextLogUniform(1e-6, 1e3);
        }

        return new DequantizationScenario(weights, batches, rows, columns, outputType, q, scales);
    }

    /// <summary>Dequantizes on <paramref name="context"/>; the output's raw bits widened to uint (BF16 or FP32).</summary>
    public uint[] Run(MoeContext context)
    {
        using var scope = new DeviceScope(context);
        DeviceTensor q = scope.Upload(DataType.Float8E4M3, Q, Shape);
        long[] scaleShape = Weights && Batches > 1
            ? [Batches, ReferenceQuantization.CeilDiv(Rows, GroupRows), ReferenceQuantization.CeilDiv(Columns, 128)]
            : [Scales.Length / ReferenceQuantization.CeilDiv(Columns, 128), ReferenceQuantization.CeilDiv(Columns, 128)];
        DeviceTensor scales = scope.Upload(DataType.Float32, Scales, scaleShape);
        DeviceTensor output = scope.Allocate(OutputType, Shape);
        if (Weights)
        {
            context.DequantizeWeights(q, scales, output);
        }
        else
        {
            context.DequantizeActivations(q, scales, output);
        }

        return OutputType == DataType.BFloat16
            ? Array.ConvertAll(output.ToArray<ushort>(), b => (uint)b)
            : Array.ConvertAll(output.ToArray<float>(), BitConverter.SingleToUInt32Bits);
    }

    /// <summary>Output bits with every NaN (BF16 or FP32) replaced by one canonical NaN.</summary>
    public static uint[] CanonicalNaN(uint[] bits, DataType outputType) => Array.ConvertAll(
        bits,
        b => outputType == DataType.BFloat16
            ? (b & 0x7FFF) > 0x7F80 ? 0x7FFFu : b
            : (b & 0x7FFF_FFFF) > 0x7F80_0000 ? 0x7FC0_0000u : b);

    /// <summary>The expected output bits.</summary>
    public uint[] Reference()
    {
        float[] values = ReferenceQuantization.Dequantize(
            Q, Scales, Weights ? Batches : 1, Weights ? Rows : Batches * Rows, Columns, GroupRows);
        return OutputType == DataType.BFloat16
            ? Array.ConvertAll(values, v => (uint)((BFloat16)v).RawValue)
            : Array.ConvertAll(values, BitConverter.SingleToUInt32Bits);
    }
}
