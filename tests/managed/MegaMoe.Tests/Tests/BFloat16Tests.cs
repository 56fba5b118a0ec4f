using FluentAssertions;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary><see cref="BFloat16"/> against the native float-to-BF16 rounding.</summary>
[TestFixture]
public sealed class BFloat16Tests : CpuContextFixture
{
    [Test]
    public void RoundingMatchesNative()
    {
        // Dequantizing code 0x38 (1.0) with scale s writes bf16(1 * s) = bf16(s): one native rounding per scale.
        List<float> values = SpecialValues().ToList();
        Random random = TestRandom.Create();
        for (int i = 0; i < 4000; i++)
        {
            values.Add(BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32)));
        }

        using var scope = new DeviceScope(Cpu);
        var ones = Enumerable.Repeat((byte)0x38, values.Count * 128).ToArray();
        DeviceTensor output = scope.Allocate(DataType.BFloat16, values.Count, 128);
        Cpu.DequantizeActivations(
            scope.Upload(DataType.Float8E4M3, ones, values.Count, 128),
            scope.Upload(DataType.Float32, values.ToArray(), values.Count, 1),
            output);

        ushort[] native = output.ToArray<ushort>().Where((_, i) => i % 128 == 0).ToArray();
        BitAssert.Equal(native, values.Select(v => ((BFloat16)v).RawValue).ToArray(), "bf16(x)");
    }

    [TestCase(1f, (ushort)0x3F80)]
    [TestCase(1.00390625f, (ushort)0x3F80, TestName = "Tie rounds to even (down)")]
    [TestCase(1.01171875f, (ushort)0x3F82, TestName = "Tie rounds to even (up)")]
    [TestCase(float.PositiveInfinity, (ushort)0x7F80)]
    [TestCase(float.MaxValue, (ushort)0x7F80, TestName = "Overflow rounds to infinity")]
    [TestCase(float.NaN, (ushort)0x7FFF)]
    [TestCase(-0f, (ushort)0x8000)]
    public void ConvertsSpecialValues(float value, ushort expected) => ((BFloat16)value).RawValue.Should().Be(expected);

    [Test]
    public void EveryNaNBecomesCanonical()
    {
        ((BFloat16)BitConverter.UInt32BitsToSingle(0xFF80_0001)).RawValue.Should().Be(0x7FFF);
        ((BFloat16)BitConverter.UInt32BitsToSingle(0x7FFF_FFFF)).RawValue.Should().Be(0x7FFF);
    }

    [Test]
    public void EveryNonNaNPatternRoundTrips()
    {
        for (int bits = 0; bits <= ushort.MaxValue; bits++)
        {
            BFloat16 value = BFloat16.FromRawValue((ushort)bits);
            if (!BFloat16.IsNaN(value) && ((BFloat16)(float)value).RawValue != bits)
            {
                Assert.Fail($"0x{bits:X4} does not round-trip");
            }
        }
    }

    [Test]
    public void ConstantsAndEquality()
    {
        ((float)BFloat16.MaxValue).Should().Be(BitConverter.UInt32BitsToSingle(0x7F7F_0000));
        ((float)BFloat16.MinValue).Should().Be(-BitConverter.UInt32BitsToSingle(0x7F7F_0000));
        (BFloat16.NaN == BFloat16.NaN).Should().BeFalse("== follows IEEE");
        BFloat16.NaN.Equals(BFloat16.FromRawValue(0xFFC0)).Should().BeTrue("Equals treats NaNs alike");
        ((BFloat16)0.5f).ToString().Should().Be("0.5");
    }

    private static IEnumerable<float> SpecialValues()
    {
        uint[] patterns =
        [
            0x0000_0000, 0x8000_0000, 0x3F80_8000, 0x3F81_8000, 0x3F80_8001, 0x3F80_7FFF, 0x7F7F_FFFF, 0x7F7F_8000,
            0x7F7F_7FFF, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0x0000_0001, 0x0000_8000,
            0x0001_8000, 0x007F_FFFF, 0x0080_0000, 0x8000_8000,
        ];
        return patterns.Select(BitConverter.UInt32BitsToSingle);
    }
}
