using FluentAssertions;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary><see cref="Float8E4M3"/> against the native conversions: every code, and every rounding boundary.</summary>
[TestFixture]
public sealed class Float8E4M3Tests : CpuContextFixture
{
    [Test]
    public void EveryCodeWidensLikeNative()
    {
        byte[] codes = Enumerable.Range(0, 256).Select(c => (byte)c).ToArray();
        using var scope = new DeviceScope(Cpu);
        DeviceTensor output = scope.Allocate(DataType.Float32, 1, 256);

        Cpu.DequantizeActivations(
            scope.Upload(DataType.Float8E4M3, codes, 1, 256), scope.Upload(DataType.Float32, [1f, 1f], 1, 2), output);

        BitAssert.Equal(Array.ConvertAll(codes, c => (float)Float8E4M3.FromRawValue(c)), output.ToArray<float>(), "widened codes");
    }

    [Test]
    public void RoundingBoundariesMatchNative()
    {
        // With 448 in every 128-wide group the activation scale is exactly 1, so the library computes fp8(x) itself.
        List<float> values = BoundaryValues().Where(v => !(MathF.Abs(v) > 448)).ToList();
        const int PerGroup = 127;
        int groups = (values.Count + PerGroup - 1) / PerGroup;
        var x = new float[groups * 128];
        for (int g = 0; g < groups; g++)
        {
            x[g * 128] = 448f;
            for (int i = 0; i < PerGroup && (g * PerGroup) + i < values.Count; i++)
            {
                x[(g * 128) + 1 + i] = values[(g * PerGroup) + i];
            }
        }

        using var scope = new DeviceScope(Cpu);
        DeviceTensor q = scope.Allocate(DataType.Float8E4M3, groups, 128);
        DeviceTensor scales = scope.Allocate(DataType.Float32, groups, 1);
        Cpu.QuantizeActivations(scope.Upload(DataType.Float32, x, groups, 128), q, scales);

        scales.ToArray<float>().Should().OnlyContain(s => s == 1f);
        BitAssert.Equal(q.ToArray<byte>(), Array.ConvertAll(x, v => ((Float8E4M3)v).RawValue), "fp8(x)");
    }

    [TestCase(464f, (byte)0x7E, TestName = "Half an ulp above 448 rounds to even: 448")]
    [TestCase(464.00003f, (byte)0x7E, TestName = "Beyond 464 saturates")]
    [TestCase(1e30f, (byte)0x7E, TestName = "Large values saturate")]
    [TestCase(float.PositiveInfinity, (byte)0x7E, TestName = "Infinity saturates")]
    [TestCase(float.NegativeInfinity, (byte)0xFE, TestName = "Negative infinity saturates")]
    [TestCase(float.NaN, (byte)0x7F, TestName = "NaN")]
    [TestCase(-0f, (byte)0x80, TestName = "Negative zero keeps its sign")]
    [TestCase(0.0009765625f, (byte)0x00, TestName = "2^-10 rounds to zero")]
    [TestCase(-0.0009765625f, (byte)0x80, TestName = "-2^-10 rounds to negative zero")]
    [TestCase(0.0009765626f, (byte)0x01, TestName = "Just above 2^-10 rounds to the smallest subnormal")]
    [TestCase(0.0029296875f, (byte)0x02, TestName = "1.5 * 2^-9 ties to even subnormal")]
    [TestCase(0.0146484375f, (byte)0x08, TestName = "Subnormal carry gives the smallest normal")]
    [TestCase(1.0625f, (byte)0x38, TestName = "Tie below an even mantissa rounds down")]
    [TestCase(1.1875f, (byte)0x3A, TestName = "Tie above an odd mantissa rounds up")]
    [TestCase(1.9375f, (byte)0x40, TestName = "Mantissa carry bumps the exponent")]
    public void ConvertsSpecialValues(float value, byte expected) =>
        ((Float8E4M3)value).RawValue.Should().Be(expected);

    [Test]
    public void ConvertsNegativeNaNToPositiveNaNCode() =>
        ((Float8E4M3)BitConverter.UInt32BitsToSingle(0xFFC0_0001)).RawValue.Should().Be(0x7F);

    [Test]
    public void EveryFiniteCodeRoundTrips()
    {
        for (int code = 0; code < 256; code++)
        {
            Float8E4M3 value = Float8E4M3.FromRawValue((byte)code);
            if (!Float8E4M3.IsNaN(value))
            {
                ((Float8E4M3)(float)value).RawValue.Should().Be((byte)code);
            }
        }
    }

    [Test]
    public void ConstantsAndEquality()
    {
        ((float)Float8E4M3.MaxValue).Should().Be(448f);
        ((float)Float8E4M3.MinValue).Should().Be(-448f);
        ((float)Float8E4M3.Epsilon).Should().Be(MathF.Pow(2, -9));
        Float8E4M3.IsNaN(Float8E4M3.NaN).Should().BeTrue();
        (Float8E4M3.NaN == Float8E4M3.NaN).Should().BeFalse("== follows IEEE");
        Float8E4M3.NaN.Equals(Float8E4M3.FromRawValue(0xFF)).Should().BeTrue("Equals treats NaNs alike");
        (Float8E4M3.FromRawValue(0x00) == Float8E4M3.FromRawValue(0x80)).Should().BeTrue("+0 == -0");
        Float8E4M3.FromRawValue(0x00).GetHashCode().Should().Be(Float8E4M3.FromRawValue(0x80).GetHashCode());
        Float8E4M3.FromRawValue(0x38).ToString().Should().Be("1");
    }

    // Every representable value, the midpoints between neighbours and the floats just either side of each midpoint,
    // with both signs.
    private static IEnumerable<float> BoundaryValues()
    {
        float[] magnitudes = Enumerable.Range(0, 0x7F).Select(c => (float)Float8E4M3.FromRawValue((byte)c)).ToArray();
        for (int i = 0; i < magnitudes.Length; i++)
        {
            foreach (float sign in new[] { 1f, -1f })
            {
                yield return sign * magnitudes[i];
                float next = i + 1 < magnitudes.Length ? magnitudes[i + 1] : 480f;
                float midpoint = (magnitudes[i] + next) / 2;
                yield return sign * midpoint;
                yield return sign * MathF.BitDecrement(midpoint);
                yield return sign * MathF.BitIncrement(midpoint);
            }
        }
    }
}
