using System.Numerics;

namespace MegaMoe.Demo;

/// <summary>
/// The layer's math in float64 on the dequantized FP8 weights, with x and the activation left unquantized: the
/// result the FP8 layer approximates. Only the experts that tokens were routed to are computed, one at a time, each
/// regenerated from its seed, so memory stays at one expert's weights.
/// </summary>
internal static class Float64Reference
{
    private static readonly double[] Fp8Values =
        Enumerable.Range(0, 256).Select(code => (double)(float)Float8E4M3.FromRawValue((byte)code)).ToArray();

    /// <summary>y [T, H]; also returns how many experts were used.</summary>
    public static (double[] Y, int ExpertsUsed) Forward(DemoOptions options, SyntheticMoe problem)
    {
        int hidden = checked((int)options.Hidden), intermediate = checked((int)options.Intermediate), k = options.TopK;
        var y = new double[options.Tokens * hidden];
        double[][] x = Enumerable.Range(0, options.Tokens)
            .Select(t => problem.X.AsSpan(t * hidden, hidden).ToArray().Select(v => (double)(float)v).ToArray())
            .ToArray();
        var w13 = new byte[problem.W13ExpertBytes];
        var w2 = new byte[problem.W2ExpertBytes];
        int used = 0;
        for (int expert = 0; expert < options.Experts; expert++)
        {
            // The (token, routing weight) pairs of this expert.
            var slots = Enumerable.Range(0, options.Tokens * k)
                .Where(s => problem.TopkIdx[s] == expert)
                .Select(s => (Token: s / k, Weight: (double)problem.TopkWeights[s] * DemoOptions.RoutedScalingFactor))
                .ToArray();
            if (slots.Length == 0)
            {
                continue;
            }

            used++;
            problem.W13(expert, w13);
            problem.W2(expert, w2);
            double[][] inputs = slots.Select(s => x[s.Token]).ToArray();
            double[][] h = Project(w13, problem.W13Scales, expert, 2 * intermediate, hidden, inputs);
            double[][] activations = slots
                .Select((s, i) => Enumerable.Range(0, intermediate)
                    .Select(n => Activate(h[i][n], h[i][intermediate + n]) * s.Weight).ToArray())
                .ToArray();
            double[][] z = Project(w2, problem.W2Scales, expert, hidden, intermediate, activations);
            for (int i = 0; i < slots.Length; i++)
            {
                for (int n = 0; n < hidden; n++)
                {
                    y[(slots[i].Token * hidden) + n] += z[i][n];
                }
            }
        }

        return (y, used);
    }

    /// <summary><c>1 - 2&lt;x,y&gt; / (|x|^2 + |y|^2)</c>, the measure of docs/NUMERICS.md.</summary>
    public static double Difference(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        double dot = 0, xx = 0, yy = 0;
        for (int i = 0; i < x.Length; i++)
        {
            dot += x[i] * y[i];
            xx += x[i] * x[i];
            yy += y[i] * y[i];
        }

        return xx + yy == 0 ? 0 : 1 - (2 * dot / (xx + yy));
    }

    // SwiGLU as DeepSeek uses it: silu(gate) * up, no clamp.
    private static double Activate(double gate, double up) => gate / (1 + Math.Exp(-gate)) * up;

    // outputs[i][n] = sum_k W[n, k] * inputs[i][k] with W = FP8 codes [rows, columns] of one expert times their
    // 128x128 block scales; rows in parallel, each dequantized once and reused for every input.
    private static double[][] Project(byte[] codes, float[] scales, int expert, int rows, int columns, double[][] inputs)
    {
        int rowBlocks = (rows + 127) / 128, columnBlocks = (columns + 127) / 128;
        double[][] outputs = inputs.Select(_ => new double[rows]).ToArray();
        Parallel.For(
            0,
            rows,
            () => new double[columns],
            (n, _, row) =>
            {
                int scaleRow = ((expert * rowBlocks) + (n / 128)) * columnBlocks;
                for (int c = 0; c < columns; c++)
                {
                    row[c] = Fp8Values[codes[((long)n * columns) + c]] * scales[scaleRow + (c / 128)];
                }

                for (int i = 0; i < inputs.Length; i++)
                {
                    outputs[i][n] = Dot(row, inputs[i]);
                }

                return row;
            },
            _ => { });
        return outputs;
    }

    private static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        var sum = Vector<double>.Zero;
        int i = 0;
        for (; i <= a.Length - Vector<double>.Count; i += Vector<double>.Count)
        {
            sum += new Vector<double>(a[i..]) * new Vector<double>(b[i..]);
        }

        double total = Vector.Sum(sum);
        for (; i < a.Length; i++)
        {
            total += a[i] * b[i];
        }

        return total;
    }
}
