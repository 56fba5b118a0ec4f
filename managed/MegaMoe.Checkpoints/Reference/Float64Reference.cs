using System.Numerics;
using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Synthetic;

namespace MegaMoe.Checkpoints.Reference;

/// <summary>
/// The layer's math (docs/NUMERICS.md section 4) in float64 on the dequantized FP8 weights, with x and the activation
/// left unquantized: the result the FP8 layer approximates, within <see cref="Bound"/> in <see cref="Difference"/>. It
/// shares no code with the native library, so it is the oracle of the CLI's checks and of the tests. Only the experts
/// that tokens were routed to are computed, one at a time, each read from its source, so memory stays at one expert's
/// weights.
/// </summary>
public static class Float64Reference
{
    private static readonly double[] Fp8Values =
        Enumerable.Range(0, 256).Select(code => (double)(float)Float8E4M3.FromRawValue((byte)code)).ToArray();

    /// <summary>
    /// The largest <see cref="Difference"/> between the FP8 layer and <see cref="Forward"/> that docs/NUMERICS.md section 4
    /// allows: 3e-3 when hidden is at least 2048 and intermediate at least 1024; 5e-3 on smaller layers, whose fewer
    /// 128-element quantization groups per token give the statistic a longer tail. A wrong slot, weight or scale costs 1e-2
    /// or more.
    /// </summary>
    /// <param name="hidden">The layer's H.</param>
    /// <param name="intermediate">The layer's I.</param>
    public static double Bound(long hidden, long intermediate) => hidden >= 2048 && intermediate >= 1024 ? 3e-3 : 5e-3;

    /// <summary>y [T, H]; also returns how many experts were used.</summary>
    /// <param name="weights">The experts.</param>
    /// <param name="inputs">The batch: x [T, H] and, per slot, an expert in [0, E) or -1 (dropped).</param>
    /// <param name="routedScalingFactor">Multiplies every routing weight (2.5 for DeepSeek-V3).</param>
    /// <param name="activation">The layer's activation; DeepSeek's SwiGLU (<see cref="SwiGluActivation.DeepSeek"/>) when null.</param>
    /// <exception cref="ArgumentException">x is not [T, H], or a slot names an expert outside [-1, E).</exception>
    public static (double[] Y, int ExpertsUsed) Forward(
        IExpertWeights weights, RoutedInputs inputs, double routedScalingFactor, SwiGluActivation? activation = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(inputs);
        int hidden = checked((int)weights.Hidden), intermediate = checked((int)weights.Intermediate), k = inputs.TopK;
        Validate(weights, inputs);
        SwiGluActivation act = activation ?? SwiGluActivation.DeepSeek;
        var y = new double[inputs.Tokens * hidden];
        double[][] x = Enumerable.Range(0, inputs.Tokens)
            .Select(t => inputs.X.AsSpan(t * hidden, hidden).ToArray().Select(v => (double)(float)v).ToArray())
            .ToArray();
        var w13 = new byte[weights.W13ExpertBytes()];
        var w2 = new byte[weights.W2ExpertBytes()];
        (long r13, long c13) = weights.W13ScaleShape();
        (long r2, long c2) = weights.W2ScaleShape();
        var s13 = new float[r13 * c13];
        var s2 = new float[r2 * c2];
        int used = 0;
        for (int expert = 0; expert < weights.Experts; expert++)
        {
            // The (token, routing weight) pairs of this expert.
            var slots = Enumerable.Range(0, inputs.Tokens * k)
                .Where(s => inputs.TopkIdx[s] == expert)
                .Select(s => (Token: s / k, Weight: (double)inputs.TopkWeights[s] * routedScalingFactor))
                .ToArray();
            if (slots.Length == 0)
            {
                continue;
            }

            used++;
            ReadCanonicalW13(weights, expert, w13);
            weights.ReadW13Scales(expert, s13);
            weights.ReadW2(expert, w2);
            weights.ReadW2Scales(expert, s2);
            double[][] inputsOfExpert = slots.Select(s => x[s.Token]).ToArray();
            double[][] h = Project(w13, s13, 2 * intermediate, hidden, inputsOfExpert);
            double[][] activations = slots
                .Select((s, i) => Enumerable.Range(0, intermediate)
                    .Select(n => act.Apply(h[i][n], h[i][intermediate + n]) * s.Weight).ToArray())
                .ToArray();
            double[][] z = Project(w2, s2, hidden, intermediate, activations);
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

    /// <summary>
    /// <c>1 - 2&lt;x,y&gt; / (|x|^2 + |y|^2)</c>, the measure of docs/NUMERICS.md: 0 for equal tensors, scale-aware,
    /// and small only when both direction and magnitude agree.
    /// </summary>
    /// <exception cref="ArgumentException">x and y differ in length.</exception>
    public static double Difference(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        if (x.Length != y.Length)
        {
            throw new ArgumentException($"y holds {y.Length} values; expected {x.Length}, the length of x.", nameof(y));
        }

        double dot = 0, xx = 0, yy = 0;
        for (int i = 0; i < x.Length; i++)
        {
            dot += x[i] * y[i];
            xx += x[i] * x[i];
            yy += y[i] * y[i];
        }

        return xx + yy == 0 ? 0 : 1 - (2 * dot / (xx + yy));
    }

    // The scales are in canonical row order whatever the layout, so interleaved rows are put back first.
    private static void ReadCanonicalW13(IExpertWeights weights, int expert, byte[] destination)
    {
        weights.ReadW13(expert, destination);
        if (!weights.W13Interleaved)
        {
            return;
        }

        int columns = checked((int)weights.Hidden), intermediate = checked((int)weights.Intermediate);
        byte[] interleaved = destination.ToArray();
        for (int row = 0; row < 2 * intermediate; row++)
        {
            interleaved.AsSpan(row * columns, columns).CopyTo(destination.AsSpan(CanonicalRow(row, intermediate) * columns));
        }
    }

    // Interleaved order: gate 0-7, up 0-7, gate 8-15, up 8-15, ... (native/src/core/layouts.h).
    private static int CanonicalRow(int row, int intermediate)
    {
        int chunk = row / 16, within = row % 16;
        return within < 8 ? (chunk * 8) + within : intermediate + (chunk * 8) + within - 8;
    }

    // An expert index outside [-1, E) would be skipped by the loop over experts: a silently wrong oracle.
    private static void Validate(IExpertWeights weights, RoutedInputs inputs)
    {
        if (inputs.X.Length != (long)inputs.Tokens * weights.Hidden)
        {
            throw new ArgumentException(
                $"x holds {inputs.X.Length} values; expected T * H = {inputs.Tokens} * {weights.Hidden}.", nameof(inputs));
        }

        int bad = Array.FindIndex(inputs.TopkIdx, e => e < -1 || e >= weights.Experts);
        if (bad >= 0)
        {
            throw new ArgumentException(
                $"topk_idx[{bad / inputs.TopK}, {bad % inputs.TopK}] is {inputs.TopkIdx[bad]}; expected an expert in " +
                $"[0, {weights.Experts}) or -1 (dropped).",
                nameof(inputs));
        }
    }

    // outputs[i][n] = sum_k W[n, k] * inputs[i][k] with W = FP8 codes [rows, columns] of one expert times their
    // 128x128 block scales; rows in parallel, each dequantized once and reused for every input.
    private static double[][] Project(byte[] codes, float[] scales, int rows, int columns, double[][] inputs)
    {
        int columnBlocks = (columns + 127) / 128;
        double[][] outputs = inputs.Select(_ => new double[rows]).ToArray();
        Parallel.For(
            0,
            rows,
            () => new double[columns],
            (n, _, row) =>
            {
                int scaleRow = n / 128 * columnBlocks;
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
