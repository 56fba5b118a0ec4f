using MegaMoe.Tests.Scenarios;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>The gate/up interleave against its definition, in both directions.</summary>
[TestFixture]
public sealed class InterleaveTests : CpuContextFixture
{
    [Test]
    public void MatchesReference(
        [Values(DataType.Float8E4M3, DataType.BFloat16, DataType.Float32)] DataType dataType,
        [Values(0, 3)] int experts,
        [Values] bool inverse)
    {
        var scenario = InterleaveScenario.Random(TestRandom.Create(), experts, intermediate: 24, hidden: 40, dataType);

        BitAssert.Equal(scenario.Run(Cpu, inverse), scenario.Reference(inverse), "output");
    }

    [Test]
    public void InverseUndoesTheTransform()
    {
        var scenario = InterleaveScenario.Random(TestRandom.Create(), 2, intermediate: 128, hidden: 64, DataType.Float8E4M3);
        byte[] interleaved = scenario.Run(Cpu, inverse: false);

        byte[] restored = (scenario with { Bytes = interleaved }).Run(Cpu, inverse: true);

        BitAssert.Equal(restored, scenario.Bytes, "round trip");
    }
}
