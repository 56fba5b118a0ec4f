using FluentAssertions;
using MegaMoe.Tests.Scenarios;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>Dense and grouped GEMMs through P/Invoke against the managed reference, bit for bit.</summary>
[TestFixture]
public sealed class GemmTests : CpuContextFixture
{
    [Test]
    public void DenseMatchesReference([Values(1, 37)] int m)
    {
        var scenario = DenseGemmScenario.Random(TestRandom.Create(), m, 256, 384);

        BitAssert.Equal(scenario.Run(Cpu), scenario.Reference(), "d");
    }

    [Test]
    public void DenseAgreesWithFloat64()
    {
        var scenario = DenseGemmScenario.Random(TestRandom.Create(), 20, 128, 512);

        double difference = Metrics.Difference(Metrics.Widen(scenario.Run(Cpu)), scenario.InFloat64());

        TestContext.Out.WriteLine($"difference {difference:E3}");
        difference.Should().BeLessThan(1e-5, "only the final BF16 rounding and float32 accumulation differ");
    }

    [Test]
    public void DenseWithNoRowsIsAccepted()
    {
        var scenario = DenseGemmScenario.Random(TestRandom.Create(), 0, 128, 128);

        scenario.Run(Cpu).Should().BeEmpty();
    }

    [Test]
    public void ContiguousMatchesReference()
    {
        var scenario = ContiguousGemmScenario.Random(TestRandom.Create(), blocks: 4, experts: 3, n: 256, k: 256);

        BitAssert.Equal(scenario.Run(Cpu), scenario.Reference(), "d");
    }

    [Test]
    public void OffsetsMatchReference([Values(DataType.Int32, DataType.Int64)] DataType offsetType)
    {
        var scenario = OffsetsGemmScenario.Random(TestRandom.Create(), m: 150, experts: 4, n: 128, k: 256, offsetType);

        BitAssert.Equal(scenario.Run(Cpu), scenario.Reference(), "d");
    }

    [Test]
    public void MaskedMatchesReferenceAndLeavesOtherRowsUntouched()
    {
        var scenario = MaskedGemmScenario.Random(TestRandom.Create(), experts: 3, maxM: 24, n: 256, k: 256);

        BitAssert.Equal(scenario.Run(Cpu), scenario.Reference(), "d");
    }
}
