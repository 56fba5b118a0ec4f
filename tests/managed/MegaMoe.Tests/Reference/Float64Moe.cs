using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Reference;
using MegaMoe.Checkpoints.Synthetic;

namespace MegaMoe.Tests.Reference;

/// <summary>
/// The MoE layer's math in float64 on the dequantized weights, without quantizing x or the activation: the "true"
/// result that the FP8 layer approximates (docs/NUMERICS.md: difference at most Float64Reference.Bound). Computed by
/// <see cref="Float64Reference"/>, the oracle the megamoe CLI checks against too.
/// </summary>
public static class Float64Moe
{
    /// <summary>y [T, H] in double.</summary>
    public static double[] Forward(MoeProblem problem)
    {
        MoeLayerOptions o = problem.Options;
        var inputs = new RoutedInputs(
            problem.Tokens,
            o.TopK,
            Array.ConvertAll(problem.X, BFloat16.FromRawValue),
            Array.ConvertAll(problem.TopkIdx, e => checked((int)e)),
            problem.TopkWeights);
        return Float64Reference.Forward(new OperandExperts(problem.W13, problem.W2), inputs, o.RoutedScalingFactor, SwiGluActivation.Of(o)).Y;
    }

    // A problem's [E, rows, columns] operands, handed out one expert at a time.
    private sealed class OperandExperts(Operand w13, Operand w2) : IExpertWeights
    {
        public int Experts => w13.Batches;

        public long Hidden => w13.Columns;

        public long Intermediate => w2.Columns;

        public bool W13Interleaved => false;

        public void ReadW13(int expert, Span<byte> destination) => CopyExpert(w13.Codes, expert, destination);

        public void ReadW2(int expert, Span<byte> destination) => CopyExpert(w2.Codes, expert, destination);

        public void ReadW13Scales(int expert, Span<float> destination) => CopyExpert(w13.Scales, expert, destination);

        public void ReadW2Scales(int expert, Span<float> destination) => CopyExpert(w2.Scales, expert, destination);

        private static void CopyExpert<T>(T[] all, int expert, Span<T> destination) =>
            all.AsSpan(expert * destination.Length, destination.Length).CopyTo(destination);
    }
}
