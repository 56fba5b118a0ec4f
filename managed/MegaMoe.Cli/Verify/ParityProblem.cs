using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Synthetic;
using MegaMoe.Cli.Models;

namespace MegaMoe.Cli.Verify;

/// <summary>The host data both backends get for one shape and token count: random weights, activations and routing.</summary>
internal sealed class ParityProblem
{
    public ParityProblem(ModelShape shape, int tokens, ulong seed)
    {
        Shape = shape;
        Tokens = tokens;
        Weights = new SyntheticMoe(shape.Experts, shape.Hidden, shape.Intermediate, seed);
        Inputs = RoutedInputs.Random(tokens, shape.Hidden, shape.Experts, shape.TopK, seed);
    }

    public ModelShape Shape { get; }

    public int Tokens { get; }

    public SyntheticMoe Weights { get; }

    public RoutedInputs Inputs { get; }

    /// <summary>Slots sorted by expert (stable), for the grouped GEMM: each slot's token and the [E + 1] offsets.</summary>
    public (int[] Tokens, int[] Offsets) SortedSlots()
    {
        int k = Inputs.TopK;
        int[] slots = Enumerable.Range(0, Inputs.Tokens * k).OrderBy(s => Inputs.TopkIdx[s]).ToArray();
        var offsets = new int[Shape.Experts + 1];
        foreach (int s in slots)
        {
            offsets[Inputs.TopkIdx[s] + 1]++;
        }

        for (int e = 0; e < Shape.Experts; e++)
        {
            offsets[e + 1] += offsets[e];
        }

        return (slots.Select(s => s / k).ToArray(), offsets);
    }

    /// <summary>Expert 0's w13 codes and scales.</summary>
    public (byte[] Codes, float[] Scales) FirstExpertW13()
    {
        var codes = new byte[Weights.W13ExpertBytes()];
        Weights.ReadW13(0, codes);
        (long rows, long columns) = Weights.W13ScaleShape();
        var scales = new float[rows * columns];
        Weights.ReadW13Scales(0, scales);
        return (codes, scales);
    }
}
