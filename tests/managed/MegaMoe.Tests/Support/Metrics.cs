using MegaMoe.Checkpoints.Reference;

namespace MegaMoe.Tests.Support;

/// <summary>Error measures of docs/NUMERICS.md.</summary>
public static class Metrics
{
    /// <summary><see cref="Float64Reference.Difference"/>, the measure the CLI checks with too.</summary>
    public static double Difference(ReadOnlySpan<double> x, ReadOnlySpan<double> y) => Float64Reference.Difference(x, y);

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
