using MegaMoe.Tests.Reference;
using MegaMoe.Tests.Support;

namespace MegaMoe.Tests.Scenarios;

/// <summary>Dense GEMM d [M, N] = A [M, K] . B [N, K]^T on random FP8 operands.</summary>
public sealed record DenseGemmScenario(Operand A, Operand B)
{
    /// <summary>Draws operands.</summary>
    public static DenseGemmScenario Random(Random random, int m, int n, int k) =>
        new(Operand.RandomActivations(random, m, k), Operand.RandomWeights(random, 1, n, k));

    /// <summary>Runs on <paramref name="context"/>: d as BF16 bits.</summary>
    public ushort[] Run(MoeContext context)
    {
        using var scope = new DeviceScope(context);
        DeviceTensor d = scope.Allocate(DataType.BFloat16, A.Rows, B.Rows);
        context.GemmDense(
            scope.Upload(DataType.Float8E4M3, A.Codes, A.Shape(batched: false)),
            scope.Upload(DataType.Float32, A.Scales, A.ActivationScaleShape()),
            scope.Upload(DataType.Float8E4M3, B.Codes, B.Shape(batched: false)),
            scope.Upload(DataType.Float32, B.Scales, B.WeightScaleShape(batched: false)),
            d);
        return d.ToArray<ushort>();
    }

    /// <summary>The expected d.</summary>
    public ushort[] Reference() => ReferenceGemm.Dense(A, B);

    /// <summary>Per output, the tensor-core magnitude (<see cref="ReferenceGemm.Magnitude"/>).</summary>
    public double[] Magnitudes() => TensorCoreMagnitudes.ForRows(A, B, A.Rows, m => (m, 0));

    /// <summary>d in float64 from the dequantized operands, for a sanity bound.</summary>
    public double[] InFloat64()
    {
        var d = new double[A.Rows * B.Rows];
        for (int m = 0; m < A.Rows; m++)
        {
            for (int n = 0; n < B.Rows; n++)
            {
                double acc = 0;
                for (int k = 0; k < A.Columns; k++)
                {
                    acc += A.Value(0, m, k, weightBlocks: false) * B.Value(0, n, k, weightBlocks: true);
                }

                d[(m * B.Rows) + n] = acc;
            }
        }

        return d;
    }
}

/// <summary>
/// Contiguous grouped GEMM: 128-row blocks each owned by one random expert (or all padding), with a random number of
/// padding rows (-1) at the end of each block.
/// </summary>
public sealed record ContiguousGemmScenario(Operand A, Operand B, int[] MIndices)
{
    /// <summary>Draws operands and the row-to-expert map.</summary>
    public static ContiguousGemmScenario Random(Random random, int blocks, int experts, int n, int k)
    {
        var mIndices = new int[blocks * 128];
        for (int block = 0; block < blocks; block++)
        {
            int expert = random.Next(-1, experts);
            int used = random.Next(0, 129);
            for (int row = 0; row < 128; row++)
            {
                mIndices[(block * 128) + row] = row < used ? expert : -1;
            }
        }

        return new(Operand.RandomActivations(random, blocks * 128, k), Operand.RandomWeights(random, experts, n, k), mIndices);
    }

    /// <summary>Runs on <paramref name="context"/>: d as BF16 bits.</summary>
    public ushort[] Run(MoeContext context)
    {
        using var scope = new DeviceScope(context);
        DeviceTensor d = scope.Filled(DataType.BFloat16, 0xAB, A.Rows, B.Rows);
        context.GemmGroupedContiguous(
            scope.Upload(DataType.Float8E4M3, A.Codes, A.Shape(batched: false)),
            scope.Upload(DataType.Float32, A.Scales, A.ActivationScaleShape()),
            scope.Upload(DataType.Float8E4M3, B.Codes, B.Shape(batched: true)),
            scope.Upload(DataType.Float32, B.Scales, B.WeightScaleShape(batched: true)),
            scope.Upload(DataType.Int32, MIndices, MIndices.Length),
            d);
        return d.ToArray<ushort>();
    }

    /// <summary>The expected d (padding rows +0).</summary>
    public ushort[] Reference() => ReferenceGemm.Contiguous(A, B, MIndices);

    /// <summary>Per output, the tensor-core magnitude; 0 on padding rows.</summary>
    public double[] Magnitudes() => TensorCoreMagnitudes.ForRows(A, B, A.Rows, m => (m, MIndices[m]));
}

/// <summary>Grouped GEMM by offsets: random non-decreasing segments within [0, M], as INT32 or INT64.</summary>
public sealed record OffsetsGemmScenario(Operand A, Operand B, long[] Offsets, DataType OffsetType)
{
    /// <summary>Draws operands and segment offsets.</summary>
    public static OffsetsGemmScenario Random(Random random, int m, int experts, int n, int k, DataType offsetType)
    {
        long[] offsets = Enumerable.Range(0, experts + 1).Select(_ => (long)random.Next(0, m + 1)).Order().ToArray();
        return new(Operand.RandomActivations(random, m, k), Operand.RandomWeights(random, experts, n, k), offsets, offsetType);
    }

    /// <summary>Runs on <paramref name="context"/>: d as BF16 bits.</summary>
    public ushort[] Run(MoeContext context)
    {
        using var scope = new DeviceScope(context);
        DeviceTensor d = scope.Filled(DataType.BFloat16, 0xAB, A.Rows, B.Rows);
        DeviceTensor offsets = OffsetType == DataType.Int64
            ? scope.Upload(DataType.Int64, Offsets, Offsets.Length)
            : scope.Upload(DataType.Int32, Array.ConvertAll(Offsets, o => (int)o), Offsets.Length);
        context.GemmGroupedOffsets(
            scope.Upload(DataType.Float8E4M3, A.Codes, A.Shape(batched: false)),
            scope.Upload(DataType.Float32, A.Scales, A.ActivationScaleShape()),
            scope.Upload(DataType.Float8E4M3, B.Codes, B.Shape(batched: true)),
            scope.Upload(DataType.Float32, B.Scales, B.WeightScaleShape(batched: true)),
            offsets,
            d);
        return d.ToArray<ushort>();
    }

    /// <summary>The expected d (rows outside every segment +0).</summary>
    public ushort[] Reference() => ReferenceGemm.Offsets(A, B, Offsets);

    /// <summary>Per output, the tensor-core magnitude; 0 outside every segment.</summary>
    public double[] Magnitudes() => TensorCoreMagnitudes.ForRows(A, B, A.Rows, m => (m, ExpertOfRow(m)));

    private int ExpertOfRow(int m)
    {
        for (int e = 0; e + 1 < Offsets.Length; e++)
        {
            if (Offsets[e] <= m && m < Offsets[e + 1])
            {
                return e;
            }
        }

        return -1;
    }
}

/// <summary>Masked grouped GEMM: A [E, maxM, K] with random valid row counts, 0 and maxM included.</summary>
public sealed record MaskedGemmScenario(Operand A, Operand B, int[] MaskedM)
{
    /// <summary>The bit pattern d is filled with before the call; rows that are not computed must keep it.</summary>
    public const ushort Untouched = 0xABAB;

    /// <summary>Draws operands and counts.</summary>
    public static MaskedGemmScenario Random(Random random, int experts, int maxM, int n, int k)
    {
        int[] maskedM = Enumerable.Range(0, experts).Select(_ => random.Next(0, maxM + 1)).ToArray();
        maskedM[0] = 0;
        maskedM[^1] = maxM;
        Operand a = Operand.RandomActivations(random, experts * maxM, k) with { Batches = experts, Rows = maxM };
        return new(a, Operand.RandomWeights(random, experts, n, k), maskedM);
    }

    /// <summary>Runs on <paramref name="context"/>: d as BF16 bits.</summary>
    public ushort[] Run(MoeContext context)
    {
        using var scope = new DeviceScope(context);
        DeviceTensor d = scope.Filled(DataType.BFloat16, 0xAB, A.Batches, A.Rows, B.Rows);
        context.GemmGroupedMasked(
            scope.Upload(DataType.Float8E4M3, A.Codes, A.Shape(batched: true)),
            scope.Upload(DataType.Float32, A.Scales, A.ActivationScaleShape()),
            scope.Upload(DataType.Float8E4M3, B.Codes, B.Shape(batched: true)),
            scope.Upload(DataType.Float32, B.Scales, B.WeightScaleShape(batched: true)),
            scope.Upload(DataType.Int32, MaskedM, MaskedM.Length),
            expectedM: (long)MaskedM.Average(),
            d);
        return d.ToArray<ushort>();
    }

    /// <summary>The expected d.</summary>
    public ushort[] Reference() => ReferenceGemm.Masked(A, B, MaskedM, A.Rows, Untouched);

    /// <summary>Per output, the tensor-core magnitude; 0 on rows that are not computed.</summary>
    public double[] Magnitudes() => TensorCoreMagnitudes.ForRows(
        A, B, A.Batches * A.Rows, row => (row, row % A.Rows < MaskedM[row / A.Rows] ? row / A.Rows : -1));
}
