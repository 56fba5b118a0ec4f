using System.Numerics;

namespace MegaMoe.Demo;

/// <summary>
/// A deterministic random MoE problem: FP8 weights (NaN codes avoided) with block scales log-uniform in
/// [1e-3, 1e-2], BF16 x ~ N(0, 1), and per token top-k distinct experts with softmax weights. Each expert's weight
/// bytes come from their own stream, so they can be regenerated one expert at a time instead of being kept.
/// </summary>
internal sealed class SyntheticMoe
{
    private const ulong W13Stream = 1, W2Stream = 2, ScaleStream = 3, InputStream = 4;

    private readonly DemoOptions _options;

    public SyntheticMoe(DemoOptions options)
    {
        _options = options;
        long h = options.Hidden, i = options.Intermediate;
        W13Scales = Scales(options, 0, checked((int)(options.Experts * CeilDiv(2 * i, 128) * CeilDiv(h, 128))));
        W2Scales = Scales(options, 1, checked((int)(options.Experts * CeilDiv(h, 128) * CeilDiv(i, 128))));
        (X, TopkIdx, TopkWeights) = Inputs(options);
    }

    /// <summary>[E, ceil(2I/128), ceil(H/128)].</summary>
    public float[] W13Scales { get; }

    /// <summary>[E, ceil(H/128), ceil(I/128)].</summary>
    public float[] W2Scales { get; }

    /// <summary>x [T, H] as BF16.</summary>
    public BFloat16[] X { get; }

    /// <summary>topk_idx [T, K].</summary>
    public int[] TopkIdx { get; }

    /// <summary>topk_weights [T, K], each row summing to 1.</summary>
    public float[] TopkWeights { get; }

    /// <summary>Bytes per expert of w13 [2I, H].</summary>
    public long W13ExpertBytes => 2 * _options.Intermediate * _options.Hidden;

    /// <summary>Bytes per expert of w2 [H, I].</summary>
    public long W2ExpertBytes => _options.Hidden * _options.Intermediate;

    public static long CeilDiv(long a, long b) => (a + b - 1) / b;

    /// <summary>Writes expert <paramref name="expert"/>'s w13 [2I, H] FP8 codes.</summary>
    public void W13(int expert, Span<byte> destination) => Weights(W13Stream, expert, destination);

    /// <summary>Writes expert <paramref name="expert"/>'s w2 [H, I] FP8 codes.</summary>
    public void W2(int expert, Span<byte> destination) => Weights(W2Stream, expert, destination);

    private void Weights(ulong stream, int expert, Span<byte> destination)
    {
        SplitMix64.ForStream(_options.Seed, stream, (ulong)expert).Fill(destination);

        // 0x7F and 0xFF are NaN in E4M3FN: move them to the neighbouring ±448 (0x7E, 0xFE).
        var nanBits = new Vector<byte>(0x7F);
        int i = 0;
        for (; i <= destination.Length - Vector<byte>.Count; i += Vector<byte>.Count)
        {
            var codes = new Vector<byte>(destination[i..]);
            Vector<byte> isNaN = Vector.Equals(codes & nanBits, nanBits);
            (codes ^ (isNaN & Vector<byte>.One)).CopyTo(destination[i..]);
        }

        for (; i < destination.Length; i++)
        {
            if ((destination[i] & 0x7F) == 0x7F)
            {
                destination[i] ^= 1;
            }
        }
    }

    private static float[] Scales(DemoOptions options, ulong tensor, int count)
    {
        var random = SplitMix64.ForStream(options.Seed, ScaleStream, tensor);
        var scales = new float[count];
        for (int i = 0; i < count; i++)
        {
            scales[i] = (float)Math.Exp(Math.Log(1e-3) + (random.NextDouble() * Math.Log(10)));
        }

        return scales;
    }

    private static (BFloat16[] X, int[] TopkIdx, float[] TopkWeights) Inputs(DemoOptions options)
    {
        var random = SplitMix64.ForStream(options.Seed, InputStream, 0);
        var x = new BFloat16[options.Tokens * options.Hidden];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (BFloat16)(float)random.NextNormal();
        }

        int k = options.TopK;
        var topkIdx = new int[options.Tokens * k];
        var topkWeights = new float[options.Tokens * k];
        int[] experts = Enumerable.Range(0, options.Experts).ToArray();
        var logits = new double[k];
        for (int t = 0; t < options.Tokens; t++)
        {
            // Partial Fisher-Yates: the first k entries become k distinct experts.
            for (int j = 0; j < k; j++)
            {
                int pick = j + (int)(random.NextDouble() * (experts.Length - j));
                (experts[j], experts[pick]) = (experts[pick], experts[j]);
                logits[j] = random.NextNormal();
            }

            double total = logits.Sum(Math.Exp);
            for (int j = 0; j < k; j++)
            {
                topkIdx[(t * k) + j] = experts[j];
                topkWeights[(t * k) + j] = (float)(Math.Exp(logits[j]) / total);
            }
        }

        return (x, topkIdx, topkWeights);
    }
}
