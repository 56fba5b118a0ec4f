using System.Globalization;
using System.Runtime.InteropServices;

namespace MegaMoe;

/// <summary>
/// A bfloat16 value: the upper 16 bits of an IEEE binary32. .NET 10 has no bfloat16 type (there is no
/// <c>System.Numerics.BFloat16</c>), so MegaMoe carries its own, with conversions bit-exact with the native library
/// and <c>__float2bfloat16</c> (docs/NUMERICS.md section 1): from <see cref="float"/> rounds to nearest even and
/// maps every NaN to <c>0x7FFF</c>; to <see cref="float"/> is exact.
/// </summary>
/// <remarks>
/// Like <see cref="Half"/>, <c>==</c> follows IEEE (NaN differs from everything, +0 equals -0) while
/// <see cref="Equals(BFloat16)"/> also treats every NaN as equal, so the type works as a dictionary key.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
public readonly struct BFloat16 : IEquatable<BFloat16>
{
    private const ushort NaNBits = 0x7FFF;

    private BFloat16(ushort bits) => RawValue = bits;

    /// <summary>The NaN that conversions produce (<c>0x7FFF</c>).</summary>
    public static BFloat16 NaN => new(NaNBits);

    /// <summary>The largest finite value, (2 - 2^-7) * 2^127 (<c>0x7F7F</c>).</summary>
    public static BFloat16 MaxValue => new(0x7F7F);

    /// <summary>The smallest finite value (<c>0xFF7F</c>).</summary>
    public static BFloat16 MinValue => new(0xFF7F);

    /// <summary>The encoding.</summary>
    public ushort RawValue { get; }

    /// <summary>The value with encoding <paramref name="bits"/>.</summary>
    /// <param name="bits">A bfloat16 encoding.</param>
    public static BFloat16 FromRawValue(ushort bits) => new(bits);

    /// <summary>Whether <paramref name="value"/> is NaN.</summary>
    /// <param name="value">The value to test.</param>
    public static bool IsNaN(BFloat16 value) => (value.RawValue & 0x7FFF) > 0x7F80;

    /// <summary>Rounds to nearest even (overflow gives ±infinity); NaN becomes <c>0x7FFF</c>.</summary>
    /// <param name="value">The value to convert.</param>
    public static explicit operator BFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFFu) > 0x7F80_0000u)
        {
            return new(NaNBits);
        }

        // Adding 0x7FFF plus the lowest kept bit rounds half-way cases to even; a carry correctly bumps the exponent.
        uint rounding = 0x7FFFu + ((bits >> 16) & 1u);
        return new((ushort)((bits + rounding) >> 16));
    }

    /// <summary>The exact value.</summary>
    /// <param name="value">The value to widen.</param>
    public static implicit operator float(BFloat16 value) => BitConverter.UInt32BitsToSingle((uint)value.RawValue << 16);

    /// <summary>IEEE equality.</summary>
    /// <param name="left">The first value.</param>
    /// <param name="right">The second value.</param>
    public static bool operator ==(BFloat16 left, BFloat16 right) => (float)left == (float)right;

    /// <summary>IEEE inequality.</summary>
    /// <param name="left">The first value.</param>
    /// <param name="right">The second value.</param>
    public static bool operator !=(BFloat16 left, BFloat16 right) => !(left == right);

    /// <inheritdoc/>
    public bool Equals(BFloat16 other) => this == other || (IsNaN(this) && IsNaN(other));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is BFloat16 other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => IsNaN(this) ? NaNBits : ((float)this).GetHashCode();

    /// <summary>The value as <see cref="float"/> formats it with the invariant culture.</summary>
    public override string ToString() => ((float)this).ToString(CultureInfo.InvariantCulture);
}
