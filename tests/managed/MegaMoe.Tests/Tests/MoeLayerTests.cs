using FluentAssertions;
using MegaMoe.Checkpoints.Reference;
using MegaMoe.Tests.Reference;
using MegaMoe.Tests.Scenarios;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>The fused MoE layer against the float32 reference (bitwise) and the float64 math (metric).</summary>
[TestFixture]
public sealed class MoeLayerTests : CpuContextFixture
{
    private static readonly MoeLayerOptions DeepSeekLike = new()
    {
        Experts = 6,
        TopK = 3,
        Hidden = 256,
        Intermediate = 256,
        MaxTokens = 16,
        RoutedScalingFactor = 2.5f,
    };

    private static readonly MoeLayerOptions GptOssLike = DeepSeekLike with
    {
        Intermediate = 128,
        ActivationAlpha = 1.702f,
        ActivationBeta = 1f,
        ActivationClamp = 7f,
        RoutedScalingFactor = 1f,
    };

    [Test]
    public void MatchesReferenceBitwise([Values] bool gptOssActivation)
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), gptOssActivation ? GptOssLike : DeepSeekLike, 9, 0.15);

        (ushort[] y, int[] counts) = MoeLayerScenario.Run(Cpu, problem);

        BitAssert.Equal(y, ReferenceMoe.Forward(problem), "y");
        counts.Should().Equal(MoeLayerScenario.ExpectedCounts(problem));
    }

    [Test]
    public void AgreesWithFloat64Math([Values] bool gptOssActivation)
    {
        MoeLayerOptions options = gptOssActivation ? GptOssLike : DeepSeekLike;
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), options, 12, 0.1);

        (ushort[] y, _) = MoeLayerScenario.Run(Cpu, problem);

        double difference = Metrics.Difference(Metrics.Widen(y), Float64Moe.Forward(problem));
        TestContext.Out.WriteLine($"difference {difference:E3}");
        difference.Should().BeLessThanOrEqualTo(Float64Reference.Bound(options.Hidden, options.Intermediate));
    }

    [Test]
    public void InputFormsGiveTheSameBits(
        [Values(MoeInputForm.InterleavedFp8Weights, MoeInputForm.Fp8Activations)] MoeInputForm form,
        [Values(DataType.Int32, DataType.Int64)] DataType indexType)
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), DeepSeekLike, 5, 0.2);

        (ushort[] y, _) = MoeLayerScenario.Run(Cpu, problem, form, indexType);

        BitAssert.Equal(y, ReferenceMoe.Forward(problem), "y");
    }

    [Test]
    public void Bf16WeightsAreQuantizedByTheLibrary()
    {
        Random random = TestRandom.Create();
        MoeLayerOptions o = DeepSeekLike;
        int experts = o.Experts, hidden = (int)o.Hidden, intermediate = (int)o.Intermediate;
        ushort[] w13 = Bf16.FromFloats(random.NextActivations(experts * 2 * intermediate, hidden));
        ushort[] w2 = Bf16.FromFloats(random.NextActivations(experts * hidden, intermediate));
        (byte[] q13, float[] s13) = ReferenceQuantization.Quantize(Bf16.ToFloats(w13), experts, 2 * intermediate, hidden, 128, false);
        (byte[] q2, float[] s2) = ReferenceQuantization.Quantize(Bf16.ToFloats(w2), experts, hidden, intermediate, 128, false);
        MoeProblem problem = MoeProblem.Random(random, o, 6, 0.1) with
        {
            W13 = new Operand(q13, s13, experts, 2 * intermediate, hidden),
            W2 = new Operand(q2, s2, experts, hidden, intermediate),
        };

        ushort[] y = MoeLayerScenario.RunWithBf16Weights(Cpu, problem, w13, w2);

        BitAssert.Equal(y, ReferenceMoe.Forward(problem), "y");
    }

    [Test]
    public void EachTokenIsIndependentOfTheBatch()
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), DeepSeekLike, 8, 0.2);
        int hidden = (int)DeepSeekLike.Hidden, topK = DeepSeekLike.TopK;
        MoeProblem lastThree = problem with
        {
            Tokens = 3,
            X = problem.X[(5 * hidden)..],
            TopkIdx = problem.TopkIdx[(5 * topK)..],
            TopkWeights = problem.TopkWeights[(5 * topK)..],
        };

        (ushort[] all, _) = MoeLayerScenario.Run(Cpu, problem);
        (ushort[] part, _) = MoeLayerScenario.Run(Cpu, lastThree);

        BitAssert.Equal(part, all[(5 * hidden)..], "last three tokens");
    }

    [Test]
    public void LayerReportsWorkspaceAndOptions()
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), DeepSeekLike, 1, 0);
        using MoeLayer layer = CreateLayer(problem, progress: null, CancellationToken.None);

        layer.WorkspaceBytes.Should().BePositive();
        layer.Options.Should().Be(DeepSeekLike);
    }

    [Test]
    public void ForwardOfNoTokensWritesNothing()
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), DeepSeekLike, 1, 0);
        using MoeLayer layer = CreateLayer(problem, progress: null, CancellationToken.None);
        using var scope = new DeviceScope(Cpu);
        int[] initialCounts = MoeLayerScenario.InitialCounts(DeepSeekLike.Experts);
        DeviceTensor counts = scope.Upload(DataType.Int32, initialCounts, DeepSeekLike.Experts);
        DeviceTensor y = scope.Allocate(DataType.BFloat16, 0, DeepSeekLike.Hidden);

        layer.Forward(
            scope.Allocate(DataType.BFloat16, 0, DeepSeekLike.Hidden),
            null,
            scope.Allocate(DataType.Int32, 0, DeepSeekLike.TopK),
            scope.Allocate(DataType.Float32, 0, DeepSeekLike.TopK),
            y,
            counts);

        y.Shape.ToArray().Should().Equal(0, DeepSeekLike.Hidden);
        y.ToArray<ushort>().Should().BeEmpty();
        counts.ToArray<int>().Should().Equal(initialCounts, "no slot was routed, so no count changes");
    }

    [Test]
    public void NumTokensLimitsWhatIsComputedAndWritten()
    {
        const int tokens = 8, valid = 5;
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), DeepSeekLike, tokens, 0.2);
        int hidden = (int)DeepSeekLike.Hidden, topK = DeepSeekLike.TopK;
        MoeProblem firstFive = problem with
        {
            Tokens = valid,
            X = problem.X[..(valid * hidden)],
            TopkIdx = problem.TopkIdx[..(valid * topK)],
            TopkWeights = problem.TopkWeights[..(valid * topK)],
        };
        using MoeLayer layer = CreateLayer(problem, progress: null, CancellationToken.None);
        using var scope = new DeviceScope(Cpu);
        int[] initialCounts = MoeLayerScenario.InitialCounts(DeepSeekLike.Experts);
        DeviceTensor counts = scope.Upload(DataType.Int32, initialCounts, DeepSeekLike.Experts);
        DeviceTensor y = scope.Filled(DataType.BFloat16, 0xAB, tokens, hidden);

        layer.Forward(
            scope.Upload(DataType.BFloat16, problem.X, tokens, hidden),
            null,
            scope.Upload(DataType.Int64, problem.TopkIdx, tokens, topK),
            scope.Upload(DataType.Float32, problem.TopkWeights, tokens, topK),
            y,
            counts,
            numTokens: scope.Upload(DataType.Int32, new[] { valid }, 1));

        ushort[] result = y.ToArray<ushort>();
        BitAssert.Equal(result[..(valid * hidden)], ReferenceMoe.Forward(firstFive), "valid rows");
        result[(valid * hidden)..].Should().OnlyContain(bits => bits == 0xABAB, "rows past num_tokens are not written");
        int[] expected = MoeLayerScenario.ExpectedCounts(firstFive);
        counts.ToArray<int>().Should().Equal(initialCounts.Select((c, e) => c + expected[e]), "only valid tokens are counted");
    }

    [Test]
    public void ProgressIsReportedUpToCompletion()
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), DeepSeekLike, 1, 0);
        var reports = new List<double>();

        using MoeLayer layer = CreateLayer(problem, new SynchronousProgress(reports.Add), CancellationToken.None);

        reports.Should().NotBeEmpty().And.BeInAscendingOrder().And.OnlyContain(p => p >= 0 && p <= 1);
        reports[^1].Should().Be(1.0, "the last report marks completion");
    }

    [Test]
    public void CancellationStopsCreation()
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), DeepSeekLike, 1, 0);
        using var cancellation = new CancellationTokenSource();
        long before = SettledLiveObjectCount();

        Action create = () => CreateLayer(problem, new SynchronousProgress(_ => cancellation.Cancel()), cancellation.Token);

        create.Should().Throw<OperationCanceledException>()
            .Which.InnerException.Should().BeOfType<MegaMoeCancelledException>();
        SettledLiveObjectCount().Should().Be(before, "a cancelled creation leaves nothing behind");
    }

    [Test]
    public void AlreadyCancelledTokenThrowsBeforeAnyWork()
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), DeepSeekLike, 1, 0);

        Action create = () => CreateLayer(problem, null, new CancellationToken(canceled: true));

        create.Should().Throw<OperationCanceledException>();
    }

    [Test]
    public void ProgressHandlerExceptionPropagates()
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), DeepSeekLike, 1, 0);

        Action create = () => CreateLayer(
            problem, new SynchronousProgress(_ => throw new InvalidOperationException("handler failed")), CancellationToken.None);

        create.Should().Throw<InvalidOperationException>().WithMessage("handler failed");
    }

    // Objects other tests dropped without disposing are freed by finalizers at any time; let them run first.
    private static long SettledLiveObjectCount()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return MegaMoeLibrary.LiveObjectCount;
    }

    private MoeLayer CreateLayer(MoeProblem problem, IProgress<double>? progress, CancellationToken cancellationToken)
    {
        using var scope = new DeviceScope(Cpu);
        return MoeLayer.Create(
            Cpu,
            problem.Options,
            scope.Upload(DataType.Float8E4M3, problem.W13.Codes, problem.W13.Shape(batched: true)),
            scope.Upload(DataType.Float32, problem.W13.Scales, problem.W13.WeightScaleShape(batched: true)),
            scope.Upload(DataType.Float8E4M3, problem.W2.Codes, problem.W2.Shape(batched: true)),
            scope.Upload(DataType.Float32, problem.W2.Scales, problem.W2.WeightScaleShape(batched: true)),
            progress: progress,
            cancellationToken: cancellationToken);
    }

    // Progress<T> posts to the thread pool; the tests need the reports before Create returns.
    private sealed class SynchronousProgress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }
}
