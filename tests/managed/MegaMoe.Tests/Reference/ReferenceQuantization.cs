namespace MegaMoe.Tests.Reference;

/// <summary>docs/NUMERICS.md section 2, written independently of the native code.</summary>
public static class ReferenceQuantization
{
    /// <summary>Group width along K (and block height along N for weights).</summary>
    public const int Block = 128;

    /// <summary>
    /// Quantizes <paramref name="x"/> [<paramref name="batches"/>, <paramref name="rows"/>, <paramref name="columns"/>]
    /// with one scale per group of <paramref name="groupRows"/> x 128 elements: 1 row for activations, 128 for
    /// weights. Scales are [batches, ceil(rows/groupRows), ceil(columns/128)].
    /// </summary>
    public static (byte[] Q, float[] Scales) Quantize(
        ReadOnlySpan<float> x, int batches, int rows, int columns, int groupRows, bool ue8m0)
    {
        int rowGroups = CeilDiv(rows, groupRows), columnGroups = CeilDiv(columns, Block);
        var q = new byte[x.Length];
        var scales = new float[batches * rowGroups * columnGroups];
        for (int e = 0; e < batches; e++)
        {
            for (int gr = 0; gr < rowGroups; gr++)
            {
                for (int gc = 0; gc < columnGroups; gc++)
                {
                    int rowEnd = Math.Min((gr + 1) * groupRows, rows), columnEnd = Math.Min((gc + 1) * Block, columns);
                    float amax = 0f;
                    for (int r = gr * groupRows; r < rowEnd; r++)
                    {
                        for (int c = gc * Block; c < columnEnd; c++)
                        {
                            amax = MaxIgnoringNaN(amax, MathF.Abs(x[(((e * rows) + r) * columns) + c]));
                        }
                    }

                    float sf = MathF.Max(amax, 1e-4f) / 448.0f;
                    if (ue8m0)
                    {
                        sf = RoundUpToPowerOfTwo(sf);
                    }

                    float inverse = 1.0f / sf;
                    scales[(((e * rowGroups) + gr) * columnGroups) + gc] = sf;
                    for (int r = gr * groupRows; r < rowEnd; r++)
                    {
                        for (int c = gc * Block; c < columnEnd; c++)
                        {
                            int i = (((e * rows) + r) * columns) + c;
                            q[i] = ((Float8E4M3)(x[i] * inverse)).RawValue;
                        }
                    }
                }
            }
        }

        return (q, scales);
    }

    /// <summary>out = fp8 * sf, one float32 multiplication per element.</summary>
    public static float[] Dequantize(
        ReadOnlySpan<byte> q, ReadOnlySpan<float> scales, int batches, int rows, int columns, int groupRows)
    {
        int rowGroups = CeilDiv(rows, groupRows), columnGroups = CeilDiv(columns, Block);
        var output = new float[q.Length];
        for (int e = 0; e < batches; e++)
        {
            for (int r = 0; r < rows; r++)
            {
                for (int c = 0; c < columns; c++)
                {
                    int i = (((e * rows) + r) * columns) + c;
                    float sf = scales[(((e * rowGroups) + (r / groupRows)) * columnGroups) + (c / Block)];
                    output[i] = (float)Float8E4M3.FromRawValue(q[i]) * sf;
                }
            }
        }

        return output;
    }

    /// <summary>ceil(a / b) for positive b.</summary>
    public static int CeilDiv(int a, int b) => (a + b - 1) / b;

    // fmaxf semantics: a NaN operand is ignored (Math.Max would propagate it).
    private static float MaxIgnoringNaN(float a, float b) => float.IsNaN(b) ? a : float.IsNaN(a) ? b : MathF.Max(a, b);

    // Smallest power of two >= x for positive normal x: exact, by bumping the exponent unless the mantissa is zero.
    private static float RoundUpToPowerOfTwo(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        return (bits & 0x7F_FFFF) == 0 ? x : BitConverter.UInt32BitsToSingle((bits & 0xFF80_0000) + 0x80_0000);
    }
}
