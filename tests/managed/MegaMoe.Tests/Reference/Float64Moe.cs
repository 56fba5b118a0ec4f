using MegaMoe.Tests.Support;

namespace MegaMoe.Tests.Reference;

/// <summary>
/// The MoE layer's math in float64 on the dequantized weights, without quantizing x or the activation: the
/// "true" result that the FP8 layer approximates (docs/NUMERICS.md: difference at most 3e-3).
/// </summary>
public static class Float64Moe
{
    /// <summary>y [T, H] in double.</summary>
    public static double[] Forward(MoeProblem problem)
    {
        MoeLayerOptions o = problem.Options;
        int hidden = (int)o.Hidden, intermediate = (int)o.Intermediate, topK = o.TopK;
        var y = new double[problem.Tokens * hidden];
        var h = new double[2 * intermediate];
        var activation = new double[intermediate];
        for (int t = 0; t < problem.Tokens; t++)
        {
            float[] x = Bf16.ToFloats(problem.X.AsSpan(t * hidden, hidden));
            for (int j = 0; j < topK; j++)
            {
                int expert = (int)problem.TopkIdx[(t * topK) + j];
                if (expert < 0)
                {
                    continue;
                }

                for (int n = 0; n < 2 * intermediate; n++)
                {
                    double acc = 0;
                    for (int k = 0; k < hidden; k++)
                    {
                        acc += problem.W13.Value(expert, n, k, weightBlocks: true) * x[k];
                    }

                    h[n] = acc;
                }

                double weight = (double)problem.TopkWeights[(t * topK) + j] * o.RoutedScalingFactor;
                for (int i = 0; i < intermediate; i++)
                {
                    activation[i] = Activate(h[i], h[intermediate + i], o) * weight;
                }

                for (int n = 0; n < hidden; n++)
                {
                    double acc = 0;
                    for (int i = 0; i < intermediate; i++)
                    {
                        acc += problem.W2.Value(expert, n, i, weightBlocks: true) * activation[i];
                    }

                    y[(t * hidden) + n] += acc;
                }
            }
        }

        return y;
    }

    private static double Activate(double gate, double up, MoeLayerOptions options)
    {
        double c = options.ActivationClamp;
        if (c > 0)
        {
            gate = Math.Min(gate, c);
            up = Math.Clamp(up, -c, c);
        }

        return gate / (1 + Math.Exp(-options.ActivationAlpha * gate)) * (up + options.ActivationBeta);
    }
}
