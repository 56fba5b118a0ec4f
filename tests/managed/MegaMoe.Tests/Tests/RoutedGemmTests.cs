using FluentAssertions;
using MegaMoe.Tests.Scenarios;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>The routed grouped GEMM through a <see cref="RoutedGemmPlan"/> against the managed reference.</summary>
[TestFixture]
public sealed class RoutedGemmTests : CpuContextFixture
{
    [Test]
    public void MatchesReference(
        [Values(DataType.Int32, DataType.Int64)] DataType indexType,
        [Values] bool weighted,
        [Values] bool countOnDevice)
    {
        var scenario = RoutedGemmScenario.Random(
            TestRandom.Create(), tokens: 11, topK: 3, experts: 4, n: 256, k: 256, indexType, weighted, countOnDevice);

        BitAssert.Equal(scenario.Run(Cpu), scenario.Reference(), "d");
    }

    [Test]
    public void ExpertSpecializationDoesNotChangeResults()
    {
        var scenario = RoutedGemmScenario.Random(
            TestRandom.Create(), tokens: 9, topK: 2, experts: 3, n: 128, k: 256, DataType.Int32, weighted: true, countOnDevice: false);

        BitAssert.Equal(scenario.Run(Cpu, RoutedPlanOptions.ExpertSpecialization), scenario.Reference(), "d");
    }

    [Test]
    public void PlanKeepsItsShape()
    {
        using var plan = RoutedGemmPlan.Create(Cpu, maxTokens: 64, topK: 4, numExperts: 8, n: 256, k: 512);

        (plan.MaxTokens, plan.TopK, plan.NumExperts, plan.N, plan.K).Should().Be((64L, 4, 8, 256L, 512L));
    }
}
