using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Synthetic;

namespace MegaMoe.Cli.Running;

/// <summary>
/// The work of one forward pass, for throughput figures: 6·H·I flops per routed slot (up-projection to 2I, then down),
/// and the bytes that must cross memory at least once: the FP8 weights and scales of every expert the batch uses, x and
/// y in BF16, and the routing.
/// </summary>
internal static class MoeCost
{
    public static double Flops(IExpertWeights weights, RoutedInputs inputs) =>
        6.0 * weights.Hidden * weights.Intermediate * inputs.TopkIdx.Count(e => e >= 0);

    public static double Bytes(IExpertWeights weights, RoutedInputs inputs) => Bytes(weights, [inputs]);

    /// <summary>The batches of all ranks of an expert-parallel group together: each expert's weights cross memory once.</summary>
    public static double Bytes(IExpertWeights weights, IReadOnlyList<RoutedInputs> batches)
    {
        double perExpert = (double)weights.TotalBytes() / weights.Experts;
        int experts = batches.SelectMany(b => b.TopkIdx).Where(e => e >= 0).Distinct().Count();
        double activations = batches.Sum(b => 2.0 * 2 * b.Tokens * weights.Hidden);
        double routing = batches.Sum(b => 8.0 * b.Tokens * b.TopK);
        return (perExpert * experts) + activations + routing;
    }
}
