using MegaMoe.Tests.Support;

namespace MegaMoe.Tests.Reference;

/// <summary>
/// Host inputs of one MoE layer forward, in the canonical (non-interleaved) weight order: x [T, H] BF16 bits,
/// routing [T, TopK], W13 [E, 2I, H] and W2 [E, H, I] as FP8 codes with 128x128 block scales.
/// </summary>
public sealed record MoeProblem
{
    /// <summary>Layer options (shape, activation, routed scaling).</summary>
    public required MoeLayerOptions Options { get; init; }

    /// <summary>Tokens T.</summary>
    public required int Tokens { get; init; }

    /// <summary>x [T, H], BF16 bits.</summary>
    public required ushort[] X { get; init; }

    /// <summary>topk_idx [T, TopK]; -1 drops a slot.</summary>
    public required long[] TopkIdx { get; init; }

    /// <summary>topk_weights [T, TopK].</summary>
    public required float[] TopkWeights { get; init; }

    /// <summary>W13 [E, 2I, H] with [E, 2I/128, H/128] scales.</summary>
    public required Operand W13 { get; init; }

    /// <summary>W2 [E, H, I] with [E, H/128, I/128] scales.</summary>
    public required Operand W2 { get; init; }

    /// <summary>Draws a problem: normal x, FP8 weights, distinct experts per token with softmax weights, some slots dropped.</summary>
    public static MoeProblem Random(Random random, MoeLayerOptions options, int tokens, double dropProbability)
    {
        int experts = options.Experts, topK = options.TopK;
        int hidden = (int)options.Hidden, intermediate = (int)options.Intermediate;
        var topkIdx = new long[tokens * topK];
        var topkWeights = new float[tokens * topK];
        for (int t = 0; t < tokens; t++)
        {
            int[] chosen = Enumerable.Range(0, experts).OrderBy(_ => random.Next()).Take(topK).ToArray();
            double[] logits = chosen.Select(_ => random.NextDouble() * 4).ToArray();
            double total = logits.Sum(Math.Exp);
            for (int j = 0; j < topK; j++)
            {
                topkIdx[(t * topK) + j] = random.NextDouble() < dropProbability ? -1 : chosen[j];
                topkWeights[(t * topK) + j] = (float)(Math.Exp(logits[j]) / total);
            }
        }

        float[] x = new float[tokens * hidden];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = random.NextNormal();
        }

        return new MoeProblem
        {
            Options = options,
            Tokens = tokens,
            X = Bf16.FromFloats(x),
            TopkIdx = topkIdx,
            TopkWeights = topkWeights,
            W13 = Operand.RandomWeights(random, experts, 2 * intermediate, hidden),
            W2 = Operand.RandomWeights(random, experts, hidden, intermediate),
        };
    }
}
