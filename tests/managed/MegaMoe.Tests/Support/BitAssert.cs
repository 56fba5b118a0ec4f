using System.Globalization;
using FluentAssertions;
using NUnit.Framework;

namespace MegaMoe.Tests.Support;

/// <summary>Bitwise comparisons of output arrays that report the first mismatches instead of the whole arrays.</summary>
public static class BitAssert
{
    private const int Reported = 5;

    /// <summary>Asserts that two arrays hold the same bits.</summary>
    public static void Equal<T>(T[] actual, T[] expected, string what)
        where T : unmanaged, IEquatable<T>
    {
        actual.Length.Should().Be(expected.Length, $"{what} has the expected number of elements");
        var mismatches = new List<string>();
        int count = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (!actual[i].Equals(expected[i]))
            {
                if (count++ < Reported)
                {
                    mismatches.Add(string.Create(CultureInfo.InvariantCulture, $"[{i}] {Show(actual[i])} != {Show(expected[i])}"));
                }
            }
        }

        count.Should().Be(0, $"{what} must match bit for bit; first mismatches (actual != expected): {string.Join("; ", mismatches)}");
    }

    /// <summary>Asserts that two float arrays hold the same bits (NaN payloads included).</summary>
    public static void Equal(float[] actual, float[] expected, string what) =>
        Equal(Bits(actual), Bits(expected), what);

    /// <summary>
    /// The GPU bound for GEMM outputs as the native parity tests apply it (tests/native/gpu/gpu_support.h): each BF16
    /// output is within 1 ulp of the reference (same sign), or both are within 1 ulp of zero, or the difference is at
    /// most 2^-9 of the output's tensor-core magnitude. Hopper's FP8 tensor cores sum each 128-K block in a truncated
    /// (about 14-bit) accumulator, so where a block's products cancel the error is far more than 1 ulp of the result.
    /// </summary>
    public static void WithinGemmBound(ushort[] actual, ushort[] expected, double[] magnitudes, string what)
    {
        actual.Length.Should().Be(expected.Length, $"{what} has the expected number of elements");
        var violations = new List<string>();
        int beyondUlp = 0, count = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            int ulps = UlpDistance(actual[i], expected[i]);
            bool sameSign = (actual[i] & 0x8000) == (expected[i] & 0x8000);
            if ((sameSign && ulps <= 1) || ((actual[i] & 0x7FFF) <= 1 && (expected[i] & 0x7FFF) <= 1))
            {
                continue;
            }

            beyondUlp++;
            double error = Math.Abs((double)Bf16.ToFloat(actual[i]) - Bf16.ToFloat(expected[i]));
            if (error <= magnitudes[i] / 512)
            {
                continue;
            }

            if (count++ < Reported)
            {
                violations.Add(string.Create(
                    CultureInfo.InvariantCulture,
                    $"[{i}] {Bf16.ToFloat(actual[i])} vs {Bf16.ToFloat(expected[i])} (magnitude {magnitudes[i]:G3})"));
            }
        }

        TestContext.Out.WriteLine($"{what}: {actual.Length} outputs, {beyondUlp} beyond 1 ulp within the tensor-core bound");
        count.Should().Be(0, $"{what} must be within 1 BF16 ulp or 2^-9 of the tensor-core magnitude; first violations: {string.Join("; ", violations)}");
    }

    /// <summary>BF16 ulp distance: across zero it is the sum of both magnitudes in ulps.</summary>
    public static int UlpDistance(ushort a, ushort b)
    {
        int magnitudeA = a & 0x7FFF, magnitudeB = b & 0x7FFF;
        bool sameSign = (a & 0x8000) == (b & 0x8000);
        return sameSign ? Math.Abs(magnitudeA - magnitudeB) : magnitudeA + magnitudeB;
    }

    private static uint[] Bits(float[] values) => Array.ConvertAll(values, BitConverter.SingleToUInt32Bits);

    private static string Show<T>(T value)
        where T : unmanaged => value switch
        {
            byte b => string.Create(CultureInfo.InvariantCulture, $"0x{b:X2} ({Bf16.Fp8(b)})"),
            ushort u => string.Create(CultureInfo.InvariantCulture, $"0x{u:X4} ({Bf16.ToFloat(u)})"),
            uint f => string.Create(CultureInfo.InvariantCulture, $"0x{f:X8} ({BitConverter.UInt32BitsToSingle(f)})"),
            _ => value.ToString() ?? string.Empty,
        };
}
