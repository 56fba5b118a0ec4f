namespace MegaMoe.Tests.Support;

/// <summary>Error measures of docs/NUMERICS.md.</summary>
public static class Metrics
{
    /// <summary>
    /// <c>1 - 2&lt;x,y&gt; / (|x|^2 + |y|^2)</c> over whole tensors: 0 for equal tensors, scale-aware, and small
    /// only when both direction and magnitude agree.
    /// </summary>
    public static double Difference(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        if (x.Length != y.Length)
        {
            throw new ArgumentException($"Lengths differ: {x.Length} and {y.Length}.", nameof(y));
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

    /// <summary><see cref="Difference(ReadOnlySpan{double}, ReadOnlySpan{double})"/> of BF16 outputs.</summary>
    public static double Difference(ReadOnlySpan<ushort> bf16X, ReadOnlySpan<ushort> bf16Y) =>
        Difference(Widen(bf16X), Widen(bf16Y));

    /// <summary>Widens raw BF16 bits to double.</summary>
    public static double[] Widen(ReadOnlySpan<ushort> bf16)
    {
        var values = new double[bf16.Length];
        for (int i = 0; i < bf16.Length; i++)
        {
            values[i] = Bf16.ToFloat(bf16[i]);
        }

        return values;
    }
}
