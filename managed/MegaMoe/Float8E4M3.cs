using System.Globalization;
using System.Runtime.InteropServices;

namespace MegaMoe;

/// <summary>
/// An OCP FP8 E4M3FN value: 1 sign, 4 exponent (bias 7) and 3 mantissa bits, no infinities, NaN = <c>S.1111.111</c>,
/// largest finite 448, smallest subnormal 2^-9. .NET has no such type. Conversions are bit-exact with the native
/// library (docs/NUMERICS.md section 1): from <see cref="float"/> rounds to nearest even, saturates to ±448
/// (infinities included) and maps NaN to <c>0x7F</c>; to <see cref="float"/> is exact.
/// </summary>
/// <remarks>
/// Like <see cref="Half"/>, <c>==</c> follows IEEE (NaN differs from everything, +0 equals -0) while
/// <see cref="Equals(Float8E4M3)"/> also treats every NaN as equal, so the type works as a dictionary key.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
public readonly struct Float8E4M3 : IEquatable<Float8E4M3>
{
    private const byte SignMask = 0x80;
    private const byte NaNBits = 0x7F;

    private Float8E4M3(byte bits) => RawValue = bits;

    /// <summary>448, the largest finite value (<c>0x7E</c>).</summary>
    public static Float8E4M3 MaxValue => new(0x7E);

    /// <summary>-448, the smallest finite value (<c>0xFE</c>).</summary>
    public static Float8E4M3 MinValue => new(0xFE);

    /// <summary>2^-9, the smallest positive value (<c>0x01</c>).</summary>
    public static Float8E4M3 Epsilon => new(0x01);

    /// <summary>The NaN that conversions produce (<c>0x7F</c>).</summary>
    public static Float8E4M3 NaN => new(NaNBits);

    /// <summary>The encoding.</summary>
    public byte RawValue { get; }

    /// <summary>The value with encoding <paramref name="bits"/>.</summary>
    /// <param name="bits">An FP8 E4M3FN encoding.</param>
    public static Float8E4M3 FromRawValue(byte bits) => new(bits);

    /// <summary>Whether <paramref name="value"/> is NaN (<c>S.1111.111</c>).</summary>
    /// <param name="value">The value to test.</param>
    public static bool IsNaN(Float8E4M3 value) => (value.RawValue & NaNBits) == NaNBits;

    /// <summary>Rounds to nearest even, saturating to ±448; NaN becomes <c>0x7F</c>.</summary>
    /// <param name="value">The value to convert.</param>
    public static explicit operator Float8E4M3(float value) => new(Encode(value));

    /// <summary>The exact value; NaN has the sign of the encoding.</summary>
    /// <param name="value">The value to widen.</param>
    public static implicit operator float(Float8E4M3 value) => Decode(value.RawValue);

    /// <summary>IEEE equality.</summary>
    /// <param name="left">The first value.</param>
    /// <param name="right">The second value.</param>
    public static bool operator ==(Float8E4M3 left, Float8E4M3 right) => (float)left == (float)right;

    /// <summary>IEEE inequality.</summary>
    /// <param name="left">The first value.</param>
    /// <param name="right">The second value.</param>
    public static bool operator !=(Float8E4M3 left, Float8E4M3 right) => !(left == right);

    /// <inheritdoc/>
    public bool Equals(Float8E4M3 other) => this == other || (IsNaN(this) && IsNaN(other));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Float8E4M3 other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => IsNaN(this) ? NaNBits : ((float)this).GetHashCode();

    /// <summary>The value as <see cref="float"/> formats it with the invariant culture.</summary>
    public override string ToString() => ((float)this).ToString(CultureInfo.InvariantCulture);

    // Port of float_to_fp8_e4m3 in native/src/core/formats.h, which follows cvt.rn.satfinite.e4m3x2.f32.
    private static byte Encode(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        byte sign = (byte)((bits >> 24) & SignMask);
        uint absBits = bits & 0x7FFF_FFFFu;
        if (absBits > 0x7F80_0000u)
        {
            return NaNBits;
        }

        // Beyond 448 + half an ulp (464) everything, infinity included, saturates to 448.
        if (absBits > 0x43E8_0000u)
        {
            return (byte)(sign | 0x7E);
        }

        // At or below half the smallest subnormal (2^-10) everything rounds to zero.
        if (absBits <= 0x3A80_0000u)
        {
            return sign;
        }

        int exponent = (int)(absBits >> 23) - 127;
        uint significand = (absBits & 0x7F_FFFFu) | 0x80_0000u;

        // Float significand bits dropped by the 3-bit mantissa; more when the result is subnormal.
        int shift = exponent >= -6 ? 20 : 20 + (-6 - exponent);
        uint kept = significand >> shift;
        uint rest = significand & ((1u << shift) - 1u);
        uint half = 1u << (shift - 1);
        if (rest > half || (rest == half && (kept & 1u) != 0))
        {
            kept++;
        }

        // Normal: kept is 1.mmm and a carry out of the mantissa bumps the exponent. Subnormal: kept is the code
        // (a carry makes it 8, the smallest normal).
        uint code = exponent >= -6 ? ((uint)(exponent + 7) << 3) + (kept - 8u) : kept;
        return (byte)(sign | code);
    }

    private static float Decode(byte bits)
    {
        uint sign = (uint)(bits & SignMask) << 24;
        uint exponent = (uint)(bits >> 3) & 0xFu;
        uint mantissa = bits & 0x7u;
        if (exponent == 0xF && mantissa == 0x7)
        {
            return BitConverter.UInt32BitsToSingle(0x7FC0_0000u | sign);
        }

        if (exponent == 0)
        {
            float magnitude = mantissa * 0.001953125f;
            return BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(magnitude) | sign);
        }

        return BitConverter.UInt32BitsToSingle(sign | ((exponent + 120u) << 23) | (mantissa << 20));
    }
}
