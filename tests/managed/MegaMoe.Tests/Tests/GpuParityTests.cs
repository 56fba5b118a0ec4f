using FluentAssertions;
using MegaMoe.Checkpoints.Reference;
using MegaMoe.Tests.Reference;
using MegaMoe.Tests.Scenarios;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>
/// CUDA against the CPU backend on identical inputs, with the bounds of docs/NUMERICS.md: bitwise for quantization,
/// dequantization (NaN payloads aside) and the interleave, 1 BF16 ulp or the tensor-core bound for GEMMs
/// (<see cref="BitAssert.WithinGemmBound"/>), difference &lt;= 1e-4 for the MoE layer. Skipped (with
/// the library's reason) where the CUDA backend is unavailable, unless <see cref="RequireCudaVariable"/> is 1 (the
/// GPU runner sets it): then that is a failure.
/// </summary>
[TestFixture]
[Category("Gpu")]
public sealed class GpuParityTests : CpuContextFixture
{
    /// <summary>Set to 1 to make an unavailable CUDA backend fail the fixture instead of ignoring it.</summary>
    public const string RequireCudaVariable = "MEGAMOE_REQUIRE_CUDA";

    private MoeContext? _cuda;

    private MoeContext Cuda => _cuda ?? throw new InvalidOperationException("The fixture is not set up.");

    [OneTimeSetUp]
    public void CreateCudaContext()
    {
        if (!MoeContext.IsBackendAvailable(Backend.Cuda, 0, out string? reason))
        {
            string message = $"CUDA backend unavailable: {reason}";
            if (Environment.GetEnvironmentVariable(RequireCudaVariable) == "1")
            {
                Assert.Fail($"{message} ({RequireCudaVariable}=1)");
            }

            Assert.Ignore(message);
        }

        _cuda = MoeContext.Create(Backend.Cuda);
        TestContext.Out.WriteLine(_cuda.DeviceInfo.ToString());
    }

    [OneTimeTearDown]
    public void DisposeCudaContext() => _cuda?.Dispose();

    [Test]
    public void QuantizationIsBitwiseIdentical(
        [Values] bool weights,
        [Values(DataType.BFloat16, DataType.Float32)] DataType inputType,
        [Values(QuantizationOptions.None, QuantizationOptions.Ue8m0Scales)] QuantizationOptions options)
    {
        var scenario = QuantizationScenario.Random(TestRandom.Create(), weights, weights ? 3 : 1, 257, 1000, inputType, options);

        (byte[] q, float[] scales) = scenario.Run(Cuda);

        (byte[] cpuQ, float[] cpuScales) = scenario.Run(Cpu);
        BitAssert.Equal(scales, cpuScales, "scales");
        BitAssert.Equal(q, cpuQ, "q");
    }

    [Test]
    public void DequantizationIsBitwiseIdenticalApartFromNaNPayloads([Values] bool weights, [Values(DataType.BFloat16, DataType.Float32)] DataType outputType)
    {
        var scenario = DequantizationScenario.Random(TestRandom.Create(), weights, weights ? 2 : 1, 300, 520, outputType);

        // NaN codes widen to NaN with a backend-specific payload (as the native parity tests also allow).
        BitAssert.Equal(
            DequantizationScenario.CanonicalNaN(scenario.Run(Cuda), outputType),
            DequantizationScenario.CanonicalNaN(scenario.Run(Cpu), outputType),
            "output");
    }

    [Test]
    public void InterleaveIsBitwiseIdentical([Values(DataType.Float8E4M3, DataType.BFloat16)] DataType dataType, [Values] bool inverse)
    {
        var scenario = InterleaveScenario.Random(TestRandom.Create(), 4, intermediate: 256, hidden: 384, dataType);

        BitAssert.Equal(scenario.Run(Cuda, inverse), scenario.Run(Cpu, inverse), "output");
    }

    [Test]
    public void DenseIsWithinTheGemmBound([Values(1, 100, 300)] int m)
    {
        var scenario = DenseGemmScenario.Random(TestRandom.Create(), m, 512, 1024);

        BitAssert.WithinGemmBound(scenario.Run(Cuda), scenario.Run(Cpu), scenario.Magnitudes(), "d");
    }

    [Test]
    public void ContiguousIsWithinTheGemmBound()
    {
        var scenario = ContiguousGemmScenario.Random(TestRandom.Create(), blocks: 6, experts: 4, n: 384, k: 512);

        BitAssert.WithinGemmBound(scenario.Run(Cuda), scenario.Run(Cpu), scenario.Magnitudes(), "d");
    }

    [Test]
    public void OffsetsAreWithinTheGemmBound([Values(DataType.Int32, DataType.Int64)] DataType offsetType)
    {
        var scenario = OffsetsGemmScenario.Random(TestRandom.Create(), m: 500, experts: 5, n: 256, k: 512, offsetType);

        BitAssert.WithinGemmBound(scenario.Run(Cuda), scenario.Run(Cpu), scenario.Magnitudes(), "d");
    }

    [Test]
    public void MaskedIsWithinTheGemmBound()
    {
        var scenario = MaskedGemmScenario.Random(TestRandom.Create(), experts: 4, maxM: 96, n: 512, k: 512);

        BitAssert.WithinGemmBound(scenario.Run(Cuda), scenario.Run(Cpu), scenario.Magnitudes(), "d");
    }

    [Test]
    public void RoutedIsWithinTheGemmBound(
        [Values(DataType.Int32, DataType.Int64)] DataType indexType,
        [Values(RoutedPlanOptions.None, RoutedPlanOptions.ExpertSpecialization)] RoutedPlanOptions options)
    {
        var scenario = RoutedGemmScenario.Random(
            TestRandom.Create(), tokens: 40, topK: 4, experts: 8, n: 256, k: 512, indexType, weighted: true, countOnDevice: true);

        BitAssert.WithinGemmBound(scenario.Run(Cuda, options), scenario.Run(Cpu, options), scenario.Magnitudes(), "d");
    }

    [Test]
    public void MoeLayerAgreesWithTheCpuBackend(
        [Values(MoeInputForm.Fp8Weights, MoeInputForm.InterleavedFp8Weights)] MoeInputForm form,
        [Values] bool expertSpecialization)
    {
        var options = new MoeLayerOptions
        {
            ExpertSpecializationUp = expertSpecialization,
            ExpertSpecializationDown = expertSpecialization,
            Experts = 8,
            TopK = 4,
            Hidden = 512,
            Intermediate = 256,
            MaxTokens = 64,
            RoutedScalingFactor = 2.5f,
        };
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), options, 48, 0.1);

        (ushort[] cuda, int[] cudaCounts) = MoeLayerScenario.Run(Cuda, problem, form);

        (ushort[] cpu, int[] cpuCounts) = MoeLayerScenario.Run(Cpu, problem, form);
        double difference = Metrics.Difference(cuda, cpu);
        TestContext.Out.WriteLine($"difference vs CPU {difference:E3}");
        difference.Should().BeLessThanOrEqualTo(1e-4);
        Metrics.Difference(Metrics.Widen(cuda), Float64Moe.Forward(problem)).Should()
            .BeLessThanOrEqualTo(Float64Reference.Bound(options.Hidden, options.Intermediate));
        cudaCounts.Should().Equal(cpuCounts);
    }
}
