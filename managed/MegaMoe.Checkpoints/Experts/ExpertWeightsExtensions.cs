namespace MegaMoe.Checkpoints.Experts;

/// <summary>Sizes of one expert's tensors in an <see cref="IExpertWeights"/>.</summary>
public static class ExpertWeightsExtensions
{
    /// <summary>Bytes of one expert's w13 [2I, H].</summary>
    public static long W13ExpertBytes(this IExpertWeights weights) => 2 * weights.Intermediate * weights.Hidden;

    /// <summary>Bytes of one expert's w2 [H, I].</summary>
    public static long W2ExpertBytes(this IExpertWeights weights) => weights.Hidden * weights.Intermediate;

    /// <summary>Shape of one expert's w13 scales.</summary>
    public static (long Rows, long Columns) W13ScaleShape(this IExpertWeights weights) =>
        (Blocks(2 * weights.Intermediate), Blocks(weights.Hidden));

    /// <summary>Shape of one expert's w2 scales.</summary>
    public static (long Rows, long Columns) W2ScaleShape(this IExpertWeights weights) =>
        (Blocks(weights.Hidden), Blocks(weights.Intermediate));

    /// <summary>Bytes of all experts' FP8 weights and scales.</summary>
    public static long TotalBytes(this IExpertWeights weights)
    {
        (long r13, long c13) = weights.W13ScaleShape();
        (long r2, long c2) = weights.W2ScaleShape();
        return weights.Experts * (weights.W13ExpertBytes() + weights.W2ExpertBytes() + (4 * ((r13 * c13) + (r2 * c2))));
    }

    /// <summary>ceil(n / 128): 128-element blocks covering n.</summary>
    public static long Blocks(long n) => (n + 127) / 128;
}
