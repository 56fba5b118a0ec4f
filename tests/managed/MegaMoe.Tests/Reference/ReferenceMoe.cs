using MegaMoe.Tests.Support;

namespace MegaMoe.Tests.Reference;

/// <summary>docs/NUMERICS.md section 4, step by step, in float32: what the CPU backend must produce bit for bit.</summary>
public static class ReferenceMoe
{
    /// <summary>y [T, H] as BF16 bits.</summary>
    public static ushort[] Forward(MoeProblem problem)
    {
        MoeLayerOptions o = problem.Options;
        int hidden = (int)o.Hidden, intermediate = (int)o.Intermediate, topK = o.TopK;
        var y = new ushort[problem.Tokens * hidden];
        var h = new float[2 * intermediate];
        var activation = new float[intermediate];
        var sum = new float[hidden];
        for (int t = 0; t < problem.Tokens; t++)
        {
            // 1. Quantize x[t] in 1x128 groups.
            float[] xRow = Bf16.ToFloats(problem.X.AsSpan(t * hidden, hidden));
            (byte[] qx, float[] sx) = ReferenceQuantization.Quantize(xRow, 1, 1, hidden, 1, ue8m0: false);
            var xOperand = new Operand(qx, sx, 1, 1, hidden);
            Array.Clear(sum);
            for (int j = 0; j < topK; j++)
            {
                long expert = problem.TopkIdx[(t * topK) + j];
                if (expert < 0)
                {
                    continue;
                }

                // 2. Up-projection accumulators, not rounded.
                for (int n = 0; n < 2 * intermediate; n++)
                {
                    h[n] = ReferenceGemm.Accumulate(xOperand, 0, problem.W13, (int)expert, n);
                }

                // 3. Activation with the routing weight folded in before re-quantization.
                float weight = problem.TopkWeights[(t * topK) + j] * o.RoutedScalingFactor;
                for (int i = 0; i < intermediate; i++)
                {
                    activation[i] = Activate(h[i], h[intermediate + i], o) * weight;
                }

                // 4. Re-quantize, 5. down-projection rounded to BF16, 6. combine in slot order.
                (byte[] qa, float[] sa) = ReferenceQuantization.Quantize(activation, 1, 1, intermediate, 1, ue8m0: false);
                var aOperand = new Operand(qa, sa, 1, 1, intermediate);
                for (int n = 0; n < hidden; n++)
                {
                    sum[n] += (float)(BFloat16)ReferenceGemm.Accumulate(aOperand, 0, problem.W2, (int)expert, n);
                }
            }

            for (int n = 0; n < hidden; n++)
            {
                y[(t * hidden) + n] = ((BFloat16)sum[n]).RawValue;
            }
        }

        return y;
    }

    /// <summary>act(g, u) = (g * sigmoid(alpha * g)) * (u + beta), after the optional clamp.</summary>
    public static float Activate(float gate, float up, MoeLayerOptions options)
    {
        float c = options.ActivationClamp;
        if (c > 0)
        {
            gate = MathF.Min(gate, c);
            up = MathF.Min(MathF.Max(up, -c), c);
        }

        float sigmoid = 1.0f / (1.0f + MathF.Exp(-(options.ActivationAlpha * gate)));
        return gate * sigmoid * (up + options.ActivationBeta);
    }
}
