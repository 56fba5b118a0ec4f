using FluentAssertions;
using MegaMoe.Tests.Reference;
using MegaMoe.Tests.Scenarios;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>
/// Expert parallelism on the CPU backend over the loopback transport, one thread per rank (docs/EP.md): the layer
/// against <see cref="MoeLayer"/> over all experts, dispatch and combine, a rank with bad input, creation that fails
/// on every rank, and the NCCL entry points of a build without CUDA.
/// </summary>
[TestFixture]
public sealed class EpTests
{
    private const int TokensPerRank = 6;

    // MaxTokens covers the tokens of all ranks, which the single layer runs in one batch.
    private static readonly MoeLayerOptions Shape = new()
    {
        Experts = 8,
        TopK = 3,
        Hidden = 256,
        Intermediate = 128,
        MaxTokens = 4 * TokensPerRank,
        RoutedScalingFactor = 2.5f,
    };

    [Test]
    public void LayerMatchesTheSingleLayer([Values(1, 2, 4)] int worldSize)
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), Shape, worldSize * TokensPerRank, 0.2);
        using MoeContext cpu = MoeContext.Create(Backend.Cpu);
        (ushort[] single, _) = MoeLayerScenario.Run(cpu, problem);

        ushort[][] y = RunLayer(problem, worldSize, TokensOf(worldSize), badRank: -1, out Exception?[] errors);

        errors.Should().OnlyContain(e => e == null);
        int offset = 0;
        for (int r = 0; r < worldSize; r++)
        {
            ushort[] want = single[(offset * (int)Shape.Hidden)..((offset + TokensOf(worldSize)[r]) * (int)Shape.Hidden)];
            if (worldSize == 1)
            {
                BitAssert.Equal(y[r], want, "W = 1 is the single layer");
            }
            else
            {
                WithinOneUlp(y[r], want, $"rank {r}");
            }

            offset += TokensOf(worldSize)[r];
        }
    }

    [Test]
    public void ARankWithBadInputGetsItsExceptionAndItsPeersFinish()
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), Shape, 2 * TokensPerRank, 0.2);
        int[] tokens = [TokensPerRank, TokensPerRank];
        ushort[][] clean = RunLayer(problem, 2, tokens, badRank: -1, out _);

        ushort[][] y = RunLayer(problem, 2, tokens, badRank: 1, out Exception?[] errors);

        errors[0].Should().BeNull();
        BitAssert.Equal(y[0], clean[0], "rank 0 as in a clean run");
        errors[1].Should().BeOfType<MegaMoeInvalidArgumentException>()
            .Which.NativeMessage.Should().Contain("megamoe_ep_layer_forward").And.Contain("'topk_idx'");
        y[1].Should().OnlyContain(bits => bits == 0xABAB, "the failing rank writes nothing");
    }

    [Test]
    public void CreationFailsOnEveryRankWhenTheConfigsDisagree()
    {
        using MoeContext cpu = MoeContext.Create(Backend.Cpu);
        EpCommunicator[] comms = EpCommunicator.CreateLoopback([cpu, cpu]);
        var errors = new Exception?[2];
        RunRanks(2, r =>
        {
            EpConfig config = ConfigOf(r, 2) with { MaxTokensPerRank = r == 1 ? TokensPerRank - 1 : TokensPerRank };
            errors[r] = Record(() => EpDispatcher.Create(comms[r], config).Dispose());
        });

        foreach (Exception? e in errors)
        {
            e.Should().BeOfType<MegaMoeInvalidArgumentException>()
                .Which.NativeMessage.Should().Contain($"config.max_tokens_per_rank is {TokensPerRank - 1} on rank 1 but {TokensPerRank} on rank 0");
        }

        DisposeAll(comms);
    }

    [Test]
    public void DispatchAndCombineReturnEveryTokenFromTheRanksOfItsExperts([Values] bool expanded)
    {
        const int worldSize = 2, tokens = TokensPerRank - 1;
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), Shape, worldSize * tokens, 0.3);
        int hidden = (int)Shape.Hidden, topK = Shape.TopK;
        using MoeContext cpu = MoeContext.Create(Backend.Cpu);
        EpCommunicator[] comms = EpCommunicator.CreateLoopback([cpu, cpu]);
        var y = new ushort[worldSize][];
        var sizes = new (long Tokens, long Rows)[worldSize];
        RunRanks(worldSize, r =>
        {
            using var scope = new DeviceScope(cpu);
            using EpDispatcher dispatcher = EpDispatcher.Create(comms[r], ConfigOf(r, worldSize));
            sizes[r] = (dispatcher.MaxReceivedTokens, dispatcher.MaxReceivedRowsExpanded);
            int first = r * tokens;
            DeviceTensor x = scope.Upload(DataType.BFloat16, problem.X[(first * hidden)..((first + tokens) * hidden)], tokens, hidden);
            DeviceTensor idx = scope.Upload(DataType.Int64, problem.TopkIdx[(first * topK)..((first + tokens) * topK)], tokens, topK);
            DeviceTensor weights = scope.Upload(DataType.Float32, problem.TopkWeights[(first * topK)..((first + tokens) * topK)], tokens, topK);
            long rows = expanded ? dispatcher.MaxReceivedRowsExpanded : dispatcher.MaxReceivedTokens;
            DeviceTensor receivedX = scope.Allocate(DataType.Float8E4M3, rows, hidden);
            DeviceTensor receivedScales = scope.Allocate(DataType.Float32, rows, hidden / 128);
            if (expanded)
            {
                dispatcher.DispatchExpanded(x, null, idx, weights, receivedX, receivedScales, scope.Allocate(DataType.Int32, 5));
            }
            else
            {
                dispatcher.Dispatch(
                    x, null, idx, weights, receivedX, receivedScales, scope.Allocate(DataType.Int32, rows, topK),
                    scope.Allocate(DataType.Float32, rows, topK), scope.Allocate(DataType.Int32, 1));
            }

            // Every received row is 1.0: a token's y counts its ranks, or adds its weights there.
            DeviceTensor y1 = scope.Allocate(DataType.BFloat16, tokens, hidden);
            dispatcher.Combine(scope.Upload(DataType.Float32, Enumerable.Repeat(1f, (int)rows * hidden).ToArray(), rows, hidden), y1);
            y[r] = y1.ToArray<ushort>();
        });
        DisposeAll(comms);

        sizes.Should().OnlyContain(s => s.Tokens == worldSize * TokensPerRank && s.Rows == worldSize * TokensPerRank * topK);
        for (int t = 0; t < worldSize * tokens; t++)
        {
            float sum = 0;
            for (int rank = 0; rank < worldSize; rank++)
            {
                float row = 0;
                bool received = false;
                for (int j = 0; j < topK; j++)
                {
                    long expert = problem.TopkIdx[(t * topK) + j];
                    if (expert >= 0 && expert / 4 == rank)
                    {
                        received = true;
                        row = MathF.FusedMultiplyAdd(problem.TopkWeights[(t * topK) + j], 1f, row);
                    }
                }

                sum += expanded ? row : (received ? 1f : 0f);
            }

            ushort[] rowBits = y[t / tokens][((t % tokens) * hidden)..(((t % tokens) + 1) * hidden)];
            rowBits.Should().OnlyContain(bits => bits == ((BFloat16)sum).RawValue, $"token {t}");
        }
    }

    [Test]
    public void TimingsAreKeptOnlyWhenAskedFor()
    {
        MoeProblem problem = MoeProblem.Random(TestRandom.Create(), Shape, TokensPerRank, 0);
        using MoeContext cpu = MoeContext.Create(Backend.Cpu);
        EpCommunicator[] comms = EpCommunicator.CreateLoopback([cpu]);
        using var scope = new DeviceScope(cpu);
        using EpMoeLayer timed = CreateLayer(scope, comms[0], problem, ConfigOf(0, 1) with { RecordTimings = true });
        using EpMoeLayer untimed = CreateLayer(scope, comms[0], problem, ConfigOf(0, 1));

        FluentActions.Invoking(() => timed.Timings).Should().Throw<MegaMoeInvalidArgumentException>()
            .Which.NativeMessage.Should().Contain("no forward has succeeded");
        DeviceTensor y = scope.Allocate(DataType.BFloat16, TokensPerRank, Shape.Hidden);
        Forward(scope, timed, problem, 0, TokensPerRank, y);
        Forward(scope, untimed, problem, 0, TokensPerRank, y);

        EpTimings timings = timed.Timings;
        timings.DispatchMilliseconds.Should().BeGreaterThanOrEqualTo(0);
        timings.ComputeMilliseconds.Should().BeGreaterThan(0);
        timings.CombineMilliseconds.Should().BeGreaterThanOrEqualTo(0);
        timings.TotalMilliseconds.Should().Be(timings.DispatchMilliseconds + timings.ComputeMilliseconds + timings.CombineMilliseconds);
        FluentActions.Invoking(() => untimed.Timings).Should().Throw<MegaMoeInvalidArgumentException>()
            .Which.NativeMessage.Should().Contain("MEGAMOE_EP_RECORD_TIMINGS");
        DisposeAll(comms);
    }

    [Test]
    public void CommunicatorsKnowTheirRankAndObjectsKeepThemAlive()
    {
        using MoeContext cpu = MoeContext.Create(Backend.Cpu);
        EpCommunicator[] comms = EpCommunicator.CreateLoopback([cpu, cpu, cpu]);

        comms.Select(c => (c.Rank, c.WorldSize)).Should().Equal((0, 3), (1, 3), (2, 3));
        comms[1].ToString().Should().Be("EpCommunicator (rank 1 of 3)");
        var created = new EpDispatcher[3];
        RunRanks(3, r => created[r] = EpDispatcher.Create(comms[r], ConfigOf(r, 3) with { Experts = 6, LocalExperts = 2, ExpertBegin = 2 * r }));
        DisposeAll(comms);
        FluentActions.Invoking(() => comms[0].Rank).Should().NotThrow("the rank is cached");
        created.Select(d => d.MaxReceivedTokens).Should().OnlyContain(n => n == 3 * TokensPerRank, "the dispatchers still work");
        foreach (EpDispatcher d in created)
        {
            d.Dispose();
        }

        FluentActions.Invoking(() => EpCommunicator.CreateLoopback([])).Should().Throw<MegaMoeInvalidArgumentException>()
            .Which.NativeMessage.Should().Contain("'world_size': is 0");
    }

    [Test]
    public void EvenSplitPartitionsTheExperts()
    {
        Enumerable.Range(0, 3).Select(r => EpConfig.EvenSplit(8, 3, r)).Should().Equal((0, 3), (3, 3), (6, 2));
        FluentActions.Invoking(() => EpConfig.EvenSplit(2, 3, 0)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => EpConfig.EvenSplit(8, 2, 2)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Test]
    public void NcclEntryPointsSayTheyAreUnavailable()
    {
        if (MegaMoeLibrary.BuildInfo.Contains("cuda=ON", StringComparison.Ordinal))
        {
            Assert.Ignore("this native library is a CUDA build");
        }

        FluentActions.Invoking(NcclUniqueId.Create).Should().Throw<MegaMoeBackendUnavailableException>()
            .Which.NativeMessage.Should().Contain("built without CUDA");
        FluentActions.Invoking(() => NcclCommunicator.InitAll([0, 1])).Should().Throw<MegaMoeBackendUnavailableException>();
        NcclUniqueId id = NcclUniqueId.FromBytes(new byte[NcclUniqueId.Size]);
        id.ToArray().Should().HaveCount(NcclUniqueId.Size);
        FluentActions.Invoking(() => NcclCommunicator.InitRank(2, id, 1, 0)).Should().Throw<MegaMoeBackendUnavailableException>();
        FluentActions.Invoking(() => NcclCommunicator.InitRank(2, id, 2, 0)).Should().Throw<MegaMoeInvalidArgumentException>()
            .Which.NativeMessage.Should().Contain("'rank'");
        FluentActions.Invoking(() => NcclUniqueId.FromBytes(new byte[3])).Should().Throw<ArgumentException>();
    }

    private static int[] TokensOf(int worldSize) =>
        worldSize == 1 ? [TokensPerRank] : [.. new[] { TokensPerRank, 0, 1, TokensPerRank - 1 }.Take(worldSize)];

    private static EpConfig ConfigOf(int rank, int worldSize)
    {
        (int begin, int count) = EpConfig.EvenSplit(Shape.Experts, worldSize, rank);
        return new EpConfig
        {
            Experts = Shape.Experts,
            TopK = Shape.TopK,
            Hidden = Shape.Hidden,
            Intermediate = Shape.Intermediate,
            MaxTokensPerRank = TokensPerRank,
            ExpertBegin = begin,
            LocalExperts = count,
            RoutedScalingFactor = Shape.RoutedScalingFactor,
        };
    }

    // Each rank runs its slice of the problem's tokens (its count from tokens); badRank passes an expert out of range.
    private static ushort[][] RunLayer(MoeProblem problem, int worldSize, int[] tokens, int badRank, out Exception?[] errors)
    {
        var contexts = Enumerable.Range(0, worldSize).Select(_ => MoeContext.Create(Backend.Cpu)).ToArray();
        foreach (MoeContext c in contexts)
        {
            c.NumThreads = 1;
        }

        EpCommunicator[] comms = EpCommunicator.CreateLoopback(contexts);
        var y = new ushort[worldSize][];
        var failures = new Exception?[worldSize];
        RunRanks(worldSize, r =>
        {
            using var scope = new DeviceScope(contexts[r]);
            using EpMoeLayer layer = CreateLayer(scope, comms[r], problem, ConfigOf(r, worldSize));
            DeviceTensor output = scope.Filled(DataType.BFloat16, 0xAB, tokens[r], Shape.Hidden);
            int first = tokens.Take(r).Sum();
            failures[r] = Record(() => Forward(scope, layer, problem, first, tokens[r], output, poisonExpert: r == badRank));
            y[r] = output.ToArray<ushort>();
        });
        DisposeAll(comms);
        DisposeAll(contexts);
        errors = failures;
        return y;
    }

    private static EpMoeLayer CreateLayer(DeviceScope scope, EpCommunicator comm, MoeProblem problem, EpConfig config)
    {
        Operand w13 = problem.W13, w2 = problem.W2;
        int begin = config.ExpertBegin, count = config.LocalExperts;
        int w13Block = (w13.Rows / 128) * (w13.Columns / 128), w2Block = (w2.Rows / 128) * (w2.Columns / 128);
        return EpMoeLayer.Create(
            comm,
            config,
            scope.Upload(DataType.Float8E4M3, w13.Codes[(begin * w13.Rows * w13.Columns)..((begin + count) * w13.Rows * w13.Columns)], count, w13.Rows, w13.Columns),
            scope.Upload(DataType.Float32, w13.Scales[(begin * w13Block)..((begin + count) * w13Block)], count, w13.Rows / 128, w13.Columns / 128),
            scope.Upload(DataType.Float8E4M3, w2.Codes[(begin * w2.Rows * w2.Columns)..((begin + count) * w2.Rows * w2.Columns)], count, w2.Rows, w2.Columns),
            scope.Upload(DataType.Float32, w2.Scales[(begin * w2Block)..((begin + count) * w2Block)], count, w2.Rows / 128, w2.Columns / 128));
    }

    private static void Forward(
        DeviceScope scope, EpMoeLayer layer, MoeProblem problem, int first, int tokens, DeviceTensor y, bool poisonExpert = false)
    {
        int hidden = (int)Shape.Hidden, topK = Shape.TopK;
        long[] idx = problem.TopkIdx[(first * topK)..((first + tokens) * topK)];
        if (poisonExpert)
        {
            idx[0] = Shape.Experts;
        }

        layer.Forward(
            scope.Upload(DataType.BFloat16, problem.X[(first * hidden)..((first + tokens) * hidden)], tokens, hidden),
            null,
            scope.Upload(DataType.Int64, idx, tokens, topK),
            scope.Upload(DataType.Float32, problem.TopkWeights[(first * topK)..((first + tokens) * topK)], tokens, topK),
            y);
    }

    // One dedicated thread per rank (a pool thread could wait for a rank that has no thread yet).
    private static void RunRanks(int worldSize, Action<int> rank)
    {
        Task[] tasks = [.. Enumerable.Range(0, worldSize).Select(r => Task.Factory.StartNew(
            () => rank(r), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default))];
        Task.WaitAll(tasks);
    }

    private static Exception? Record(Action action)
    {
        try
        {
            action();
            return null;
        }
#pragma warning disable CA1031 // The test inspects whatever the rank threw.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return e;
        }
    }

    private static void WithinOneUlp(ushort[] actual, ushort[] expected, string what)
    {
        actual.Length.Should().Be(expected.Length);
        static int Line(ushort bits) => (bits & 0x8000) != 0 ? -(bits & 0x7FFF) : bits;
        for (int i = 0; i < actual.Length; i++)
        {
            Math.Abs(Line(actual[i]) - Line(expected[i])).Should().BeLessThanOrEqualTo(
                1, $"{what}: element {i} ({Bf16.ToFloat(actual[i])} vs {Bf16.ToFloat(expected[i])}) within one BF16 ulp of the single layer");
        }
    }

    private static void DisposeAll(IEnumerable<IDisposable> objects)
    {
        foreach (IDisposable o in objects)
        {
            o.Dispose();
        }
    }
}
