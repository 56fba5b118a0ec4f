using MegaMoe.Tests.Support;

namespace MegaMoe.Tests.Reference;

/// <summary>docs/NUMERICS.md section 3: block-scaled FP8 GEMMs with exact per-block partial sums.</summary>
public static class ReferenceGemm
{
    private const int Block = ReferenceQuantization.Block;

    // Each FP8 value times 2^9 is an integer of magnitude below 2^18; sums of 128 products fit easily in 64 bits.
    private static readonly int[] s_fp8TimesTwoPow9 = BuildIntegerTable();

    /// <summary>
    /// The float32 accumulator for one output element: over K/128 blocks in ascending order,
    /// <c>acc = fma(sa[b] * sb[b], float32(exact block sum), acc)</c>.
    /// </summary>
    /// <param name="a">Row of A: K FP8 codes.</param>
    /// <param name="aScales">Its K/128 scales.</param>
    /// <param name="b">Row n of B: K FP8 codes.</param>
    /// <param name="bScales">The K/128 scales of B's block row n/128.</param>
    public static float Accumulate(ReadOnlySpan<byte> a, ReadOnlySpan<float> aScales, ReadOnlySpan<byte> b, ReadOnlySpan<float> bScales)
    {
        float acc = 0f;
        for (int block = 0; block < a.Length / Block; block++)
        {
            long sum = 0;
            for (int k = block * Block; k < (block + 1) * Block; k++)
            {
                sum += (long)s_fp8TimesTwoPow9[a[k]] * s_fp8TimesTwoPow9[b[k]];
            }

            // The long is exact in a double (|sum| < 2^43) and scaling by 2^-18 is exact: one rounding, to float.
            float partial = (float)Math.ScaleB(sum, -18);
            float scale = aScales[block] * bScales[block];
            acc = MathF.FusedMultiplyAdd(scale, partial, acc);
        }

        return acc;
    }

    /// <summary>The accumulator of row <paramref name="m"/> of A against row <paramref name="n"/> of one expert's B.</summary>
    public static float Accumulate(Operand a, int m, Operand b, int expert, int n)
    {
        int k = a.Columns, kBlocks = k / Block;
        int bRow = (expert * b.Rows) + n;
        return Accumulate(
            a.Codes.AsSpan(m * k, k),
            a.Scales.AsSpan(m * kBlocks, kBlocks),
            b.Codes.AsSpan(bRow * k, k),
            b.Scales.AsSpan(((expert * (b.Rows / Block)) + (n / Block)) * kBlocks, kBlocks));
    }

    /// <summary>
    /// The size of what a GPU's tensor cores add up for one output: <c>sum_b |sa*sb| * sum_{k in b} |a_k * b_k|</c>
    /// (float64). Their truncated per-block accumulator can be off by a small fraction of this, which is far more
    /// than 1 ulp of an output whose products cancel.
    /// </summary>
    public static double Magnitude(Operand a, int m, Operand b, int expert, int n)
    {
        int k = a.Columns, kBlocks = k / Block;
        int aRow = m * k, bRow = ((expert * b.Rows) + n) * k;
        int aScales = m * kBlocks, bScales = ((expert * (b.Rows / Block)) + (n / Block)) * kBlocks;
        double total = 0;
        for (int block = 0; block < kBlocks; block++)
        {
            double sum = 0;
            for (int i = block * Block; i < (block + 1) * Block; i++)
            {
                sum += Math.Abs((double)Bf16.Fp8(a.Codes[aRow + i]) * Bf16.Fp8(b.Codes[bRow + i]));
            }

            total += Math.Abs((double)a.Scales[aScales + block] * b.Scales[bScales + block]) * sum;
        }

        return total;
    }

    /// <summary>Dense: d [M, N] = bf16(acc).</summary>
    public static ushort[] Dense(Operand a, Operand b)
    {
        var d = new ushort[a.Rows * b.Rows];
        for (int m = 0; m < a.Rows; m++)
        {
            WriteRow(d, m, a, m, b, 0);
        }

        return d;
    }

    /// <summary>Contiguous: row m uses expert mIndices[m]; -1 rows are +0.</summary>
    public static ushort[] Contiguous(Operand a, Operand b, int[] mIndices)
    {
        var d = new ushort[a.Rows * b.Rows];
        for (int m = 0; m < a.Rows; m++)
        {
            if (mIndices[m] >= 0)
            {
                WriteRow(d, m, a, m, b, mIndices[m]);
            }
        }

        return d;
    }

    /// <summary>Offsets: rows in [offsets[e], offsets[e+1]) use expert e; others are +0.</summary>
    public static ushort[] Offsets(Operand a, Operand b, long[] offsets)
    {
        var d = new ushort[a.Rows * b.Rows];
        for (int e = 0; e + 1 < offsets.Length; e++)
        {
            for (long m = offsets[e]; m < offsets[e + 1]; m++)
            {
                WriteRow(d, (int)m, a, (int)m, b, e);
            }
        }

        return d;
    }

    /// <summary>
    /// Masked: a is [E, maxM, K]; rows m &lt; maskedM[e] of group e are computed, the others keep
    /// <paramref name="untouched"/>'s bits.
    /// </summary>
    public static ushort[] Masked(Operand a, Operand b, int[] maskedM, int maxM, ushort untouched)
    {
        var d = new ushort[a.Batches * a.Rows * b.Rows];
        Array.Fill(d, untouched);
        for (int e = 0; e < maskedM.Length; e++)
        {
            for (int m = 0; m < maskedM[e]; m++)
            {
                WriteRow(d, (e * maxM) + m, a, (e * maxM) + m, b, e);
            }
        }

        return d;
    }

    /// <summary>
    /// Routed: d [T, topK, N] = bf16(w * acc) for valid tokens (t &lt; <paramref name="validTokens"/>), +0 for
    /// dropped slots, <paramref name="untouched"/> for tokens past the valid count.
    /// </summary>
    public static ushort[] Routed(
        Operand a, Operand b, long[] topkIdx, float[]? topkWeights, int topK, int validTokens, ushort untouched)
    {
        int n = b.Rows;
        var d = new ushort[a.Rows * topK * n];
        Array.Fill(d, untouched);
        for (int t = 0; t < validTokens; t++)
        {
            for (int j = 0; j < topK; j++)
            {
                int slot = (t * topK) + j;
                long expert = topkIdx[slot];
                for (int column = 0; column < n; column++)
                {
                    float value = 0f;
                    if (expert >= 0)
                    {
                        float acc = Accumulate(a, t, b, (int)expert, column);
                        value = topkWeights is null ? acc : topkWeights[slot] * acc;
                    }

                    d[(slot * n) + column] = ((BFloat16)value).RawValue;
                }
            }
        }

        return d;
    }

    private static void WriteRow(ushort[] d, int row, Operand a, int m, Operand b, int expert)
    {
        for (int n = 0; n < b.Rows; n++)
        {
            d[(row * b.Rows) + n] = ((BFloat16)Accumulate(a, m, b, expert, n)).RawValue;
        }
    }

    private static int[] BuildIntegerTable()
    {
        var table = new int[256];
        for (int code = 0; code < 256; code++)
        {
            float value = Float8E4M3.FromRawValue((byte)code);
            table[code] = float.IsNaN(value) ? 0 : (int)(value * 512f);
        }

        return table;
    }
}
