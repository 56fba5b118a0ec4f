namespace MegaMoe.Checkpoints.Synthetic;

/// <summary>One batch for a MoE layer: activations and each token's routing.</summary>
public sealed class RoutedInputs
{
    private const ulong InputStream = 4;

    /// <summary>Creates a batch from existing arrays (row-major).</summary>
    /// <param name="tokens">T.</param>
    /// <param name="topK">Experts per token.</param>
    /// <param name="x">[T, H] activations.</param>
    /// <param name="topkIdx">[T, topK] expert indices, -1 for a dropped slot.</param>
    /// <param name="topkWeights">[T, topK] routing weights.</param>
    public RoutedInputs(int tokens, int topK, BFloat16[] x, int[] topkIdx, float[] topkWeights)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(topkIdx);
        ArgumentNullException.ThrowIfNull(topkWeights);
        if (topkIdx.Length != tokens * topK || topkWeights.Length != tokens * topK || (tokens > 0 && x.Length % tokens != 0))
        {
            throw new ArgumentException("x, topkIdx and topkWeights must hold T rows of H, topK and topK values.");
        }

        Tokens = tokens;
        TopK = topK;
        X = x;
        TopkIdx = topkIdx;
        TopkWeights = topkWeights;
    }

    /// <summary>T.</summary>
    public int Tokens { get; }

    /// <summary>Experts per token.</summary>
    public int TopK { get; }

    /// <summary>x [T, H] as BF16.</summary>
    public BFloat16[] X { get; }

    /// <summary>topk_idx [T, topK].</summary>
    public int[] TopkIdx { get; }

    /// <summary>topk_weights [T, topK].</summary>
    public float[] TopkWeights { get; }

    /// <summary>
    /// A deterministic random batch: x ~ N(0, 1) rounded to BF16 and, per token, <paramref name="topK"/> distinct experts
    /// (uniformly drawn) with softmax weights of standard-normal logits, each row summing to 1.
    /// </summary>
    public static RoutedInputs Random(int tokens, long hidden, int experts, int topK, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(topK, experts);
        var random = SplitMix64.ForStream(seed, InputStream, 0);
        var x = new BFloat16[checked(tokens * (int)hidden)];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (BFloat16)(float)random.NextNormal();
        }

        var topkIdx = new int[tokens * topK];
        var topkWeights = new float[tokens * topK];
        int[] pool = Enumerable.Range(0, experts).ToArray();
        var logits = new double[topK];
        for (int t = 0; t < tokens; t++)
        {
            // Partial Fisher-Yates: the first topK entries become topK distinct experts.
            for (int j = 0; j < topK; j++)
            {
                int pick = j + (int)(random.NextDouble() * (pool.Length - j));
                (pool[j], pool[pick]) = (pool[pick], pool[j]);
                logits[j] = random.NextNormal();
            }

            double total = logits.Sum(Math.Exp);
            for (int j = 0; j < topK; j++)
            {
                topkIdx[(t * topK) + j] = pool[j];
                topkWeights[(t * topK) + j] = (float)(Math.Exp(logits[j]) / total);
            }
        }

        return new RoutedInputs(tokens, topK, x, topkIdx, topkWeights);
    }

    /// <summary>How many distinct experts the batch routes to.</summary>
    public int DistinctExperts() => TopkIdx.Where(e => e >= 0).Distinct().Count();
}
