using MegaMoe.Tests.Reference;
using MegaMoe.Tests.Support;

namespace MegaMoe.Tests.Scenarios;

/// <summary>
/// Routed grouped GEMM: unsorted tokens with random routing (dropped slots included), INT32 or INT64 indices, with
/// or without weights, and optionally a device-side valid-token count below T.
/// </summary>
public sealed record RoutedGemmScenario(
    Operand A, Operand B, long[] TopkIdx, float[]? TopkWeights, int TopK, DataType IndexType, int? ValidTokens)
{
    /// <summary>The bit pattern d is filled with; outputs of tokens past the valid count must keep it.</summary>
    public const ushort Untouched = 0xABAB;

    private int Tokens => A.Rows;

    /// <summary>Draws operands and routing.</summary>
    public static RoutedGemmScenario Random(
        Random random, int tokens, int topK, int experts, int n, int k, DataType indexType, bool weighted, bool countOnDevice)
    {
        long[] topkIdx = new long[tokens * topK];
        for (int i = 0; i < topkIdx.Length; i++)
        {
            topkIdx[i] = random.NextDouble() < 0.2 ? -1 : random.Next(experts);
        }

        float[]? weights = weighted ? Enumerable.Range(0, tokens * topK).Select(_ => (float)random.NextDouble()).ToArray() : null;
        return new(
            Operand.RandomActivations(random, tokens, k),
            Operand.RandomWeights(random, experts, n, k),
            topkIdx,
            weights,
            topK,
            indexType,
            countOnDevice ? random.Next(0, tokens + 1) : null);
    }

    /// <summary>Runs on <paramref name="context"/> through a plan sized for more tokens than used: d as BF16 bits.</summary>
    public ushort[] Run(MoeContext context, RoutedPlanOptions options = RoutedPlanOptions.None)
    {
        using var scope = new DeviceScope(context);
        using var plan = RoutedGemmPlan.Create(context, Tokens + 7, TopK, B.Batches, B.Rows, B.Columns, options);
        DeviceTensor d = scope.Filled(DataType.BFloat16, 0xAB, Tokens, TopK, B.Rows);
        DeviceTensor topkIdx = IndexType == DataType.Int64
            ? scope.Upload(DataType.Int64, TopkIdx, Tokens, TopK)
            : scope.Upload(DataType.Int32, Array.ConvertAll(TopkIdx, i => (int)i), Tokens, TopK);
        plan.Run(
            scope.Upload(DataType.Float8E4M3, A.Codes, A.Shape(batched: false)),
            scope.Upload(DataType.Float32, A.Scales, A.ActivationScaleShape()),
            scope.Upload(DataType.Float8E4M3, B.Codes, B.Shape(batched: true)),
            scope.Upload(DataType.Float32, B.Scales, B.WeightScaleShape(batched: true)),
            topkIdx,
            TopkWeights is null ? null : scope.Upload(DataType.Float32, TopkWeights, Tokens, TopK),
            d,
            ValidTokens is int valid ? scope.Upload(DataType.Int32, new[] { valid }, 1) : null);
        return d.ToArray<ushort>();
    }

    /// <summary>The expected d.</summary>
    public ushort[] Reference() =>
        ReferenceGemm.Routed(A, B, TopkIdx, TopkWeights, TopK, ValidTokens ?? Tokens, Untouched);

    /// <summary>Per output, the tensor-core magnitude times |w|; 0 for dropped slots and tokens past the count.</summary>
    public double[] Magnitudes()
    {
        int n = B.Rows;
        var magnitudes = new double[Tokens * TopK * n];
        for (int slot = 0; slot < (ValidTokens ?? Tokens) * TopK; slot++)
        {
            if (TopkIdx[slot] >= 0)
            {
                double weight = TopkWeights is null ? 1 : Math.Abs(TopkWeights[slot]);
                for (int column = 0; column < n; column++)
                {
                    magnitudes[(slot * n) + column] = weight * ReferenceGemm.Magnitude(A, slot / TopK, B, (int)TopkIdx[slot], column);
                }
            }
        }

        return magnitudes;
    }
}
