using FluentAssertions;
using MegaMoe.Tests.Reference;
using MegaMoe.Tests.Scenarios;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>Quantization and dequantization through P/Invoke against the managed reference, bit for bit.</summary>
[TestFixture]
public sealed class QuantizationTests : CpuContextFixture
{
    [Test]
    public void ActivationsMatchReference(
        [Values(DataType.BFloat16, DataType.Float32)] DataType inputType,
        [Values(QuantizationOptions.None, QuantizationOptions.Ue8m0Scales)] QuantizationOptions options)
    {
        var scenario = QuantizationScenario.Random(TestRandom.Create(), false, 1, 7, 300, inputType, options);

        (byte[] q, float[] scales) = scenario.Run(Cpu);

        (byte[] expectedQ, float[] expectedScales) = scenario.Reference();
        BitAssert.Equal(scales, expectedScales, "scales");
        BitAssert.Equal(q, expectedQ, "q");
    }

    [Test]
    public void WeightsMatchReference(
        [Values(DataType.BFloat16, DataType.Float32)] DataType inputType,
        [Values(QuantizationOptions.None, QuantizationOptions.Ue8m0Scales)] QuantizationOptions options,
        [Values(1, 3)] int experts)
    {
        var scenario = QuantizationScenario.Random(TestRandom.Create(), true, experts, 200, 300, inputType, options);

        (byte[] q, float[] scales) = scenario.Run(Cpu);

        (byte[] expectedQ, float[] expectedScales) = scenario.Reference();
        BitAssert.Equal(scales, expectedScales, "scales");
        BitAssert.Equal(q, expectedQ, "q");
    }

    [Test]
    public void ActivationsIgnoreNaNInTheScaleAndPropagateSpecialValues()
    {
        Random random = TestRandom.Create();
        float[] x = random.NextActivations(3, 256);
        x[5] = float.NaN;
        x[256 + 7] = float.PositiveInfinity;
        x[512 + 200] = -float.NaN;
        var scenario = new QuantizationScenario(false, 1, 3, 256, DataType.Float32, QuantizationOptions.None, x);

        (byte[] q, float[] scales) = scenario.Run(Cpu);

        (byte[] expectedQ, float[] expectedScales) = scenario.Reference();
        BitAssert.Equal(scales, expectedScales, "scales");
        BitAssert.Equal(q, expectedQ, "q");
        q[5].Should().Be(0x7F, "NaN quantizes to 0x7F");
    }

    [Test]
    public void CheckedQuantizationCountsRowsWithNaNOrInfinityAndWritesThePlainBits(
        [Values(DataType.BFloat16, DataType.Float32)] DataType inputType)
    {
        Random random = TestRandom.Create();
        float[] x = random.NextActivations(5, 300);
        x[7] = float.NaN;
        x[300 + 299] = float.NegativeInfinity;
        x[300 + 3] = float.PositiveInfinity;
        x[1200 + 150] = -float.NaN;
        var scenario = new QuantizationScenario(false, 1, 5, 300, inputType, QuantizationOptions.None, x);
        (byte[] expectedQ, float[] expectedScales) = scenario.Run(Cpu);
        using var scope = new DeviceScope(Cpu);
        DeviceTensor input = inputType == DataType.BFloat16
            ? scope.Upload(DataType.BFloat16, Bf16.FromFloats(x), 5, 300)
            : scope.Upload(DataType.Float32, x, 5, 300);
        DeviceTensor q = scope.Allocate(DataType.Float8E4M3, 5, 300);
        DeviceTensor scales = scope.Allocate(DataType.Float32, 5, 3);
        DeviceTensor count = scope.Upload(DataType.Int32, [10], 1);

        Cpu.QuantizeActivationsChecked(input, q, scales, count);

        count.ToArray<int>().Should().Equal([13], "rows 0, 1 and 4 hold non-finite values, added to the 10 there");
        BitAssert.Equal(q.ToArray<byte>(), expectedQ, "q");
        BitAssert.Equal(scales.ToArray<float>(), expectedScales, "scales");
    }

    [Test]
    public void CheckedQuantizationRejectsACountOfTheWrongShapeAndLeavesItAlone()
    {
        using var scope = new DeviceScope(Cpu);
        DeviceTensor x = scope.Filled(DataType.Float32, 0xFF, 2, 128);
        DeviceTensor count = scope.Upload(DataType.Int32, [3, 4], 2);

        Action act = () => Cpu.QuantizeActivationsChecked(
            x, scope.Allocate(DataType.Float8E4M3, 2, 128), scope.Allocate(DataType.Float32, 2, 1), count);

        act.Should().Throw<MegaMoeInvalidArgumentException>().WithMessage("*'nonfinite_rows'*");
        count.ToArray<int>().Should().Equal([3, 4]);
    }

    [Test]
    public void DequantizationMatchesReference(
        [Values(false, true)] bool weights,
        [Values(DataType.BFloat16, DataType.Float32)] DataType outputType)
    {
        var scenario = DequantizationScenario.Random(TestRandom.Create(), weights, weights ? 2 : 1, 130, 300, outputType);

        BitAssert.Equal(scenario.Run(Cpu), scenario.Reference(), "dequantized output");
    }

    [Test]
    public void RoundTripStaysCloseToTheInput()
    {
        Random random = TestRandom.Create();
        float[] x = random.NextActivations(16, 512);
        using var scope = new DeviceScope(Cpu);
        DeviceTensor input = scope.Upload(DataType.Float32, x, 16, 512);
        DeviceTensor q = scope.Allocate(DataType.Float8E4M3, 16, 512);
        DeviceTensor scales = scope.Allocate(DataType.Float32, 16, 4);
        DeviceTensor output = scope.Allocate(DataType.Float32, 16, 512);

        Cpu.QuantizeActivations(input, q, scales);
        Cpu.DequantizeActivations(q, scales, output);

        double difference = Metrics.Difference(Array.ConvertAll(x, v => (double)v), Array.ConvertAll(output.ToArray<float>(), v => (double)v));
        TestContext.Out.WriteLine($"difference {difference:E3}");
        difference.Should().BeLessThan(2e-3, "FP8 keeps 3 mantissa bits: relative error about 2^-5 per element");
    }

    [Test]
    public void EmptyBatchIsAccepted()
    {
        using var scope = new DeviceScope(Cpu);
        DeviceTensor x = scope.Allocate(DataType.BFloat16, 0, 256);

        Cpu.QuantizeActivations(x, scope.Allocate(DataType.Float8E4M3, 0, 256), scope.Allocate(DataType.Float32, 0, 2));
    }

    [Test]
    public void ReferenceScalesFollowTheFloor()
    {
        (_, float[] scales) = ReferenceQuantization.Quantize(new float[128], 1, 1, 128, 1, ue8m0: false);

        scales[0].Should().Be(1e-4f / 448f);
    }
}
