namespace MegaMoe.Tests.Support;

/// <summary>Array conversions between float and raw BF16 bits, through <see cref="BFloat16"/>.</summary>
public static class Bf16
{
    /// <summary>Rounds each value to BF16 (nearest even).</summary>
    public static ushort[] FromFloats(ReadOnlySpan<float> values)
    {
        var bits = new ushort[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            bits[i] = ((BFloat16)values[i]).RawValue;
        }

        return bits;
    }

    /// <summary>Widens raw BF16 bits exactly.</summary>
    public static float[] ToFloats(ReadOnlySpan<ushort> bits)
    {
        var values = new float[bits.Length];
        for (int i = 0; i < bits.Length; i++)
        {
            values[i] = BFloat16.FromRawValue(bits[i]);
        }

        return values;
    }

    /// <summary>The value of raw BF16 bits.</summary>
    public static float ToFloat(ushort bits) => BFloat16.FromRawValue(bits);

    /// <summary>The value of an FP8 code.</summary>
    public static float Fp8(byte code) => Float8E4M3.FromRawValue(code);
}
