using System.Diagnostics;
using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Synthetic;

namespace MegaMoe.Cli.Running;

/// <summary>Medians of one rank's forward passes: the layer's own dispatch, compute and combine times, and the call.</summary>
/// <param name="Rank">The rank.</param>
/// <param name="DispatchSeconds">Quantize, pack, exchange and unpack.</param>
/// <param name="ComputeSeconds">The rank's experts on the tokens it received.</param>
/// <param name="CombineSeconds">Return, exchange and combine.</param>
/// <param name="TotalSeconds">The whole forward call, wall clock (plus synchronize).</param>
internal sealed record EpRankTiming(int Rank, double DispatchSeconds, double ComputeSeconds, double CombineSeconds, double TotalSeconds);

/// <summary>
/// A MoE layer spread over W ranks of this process (a loopback group, one context and one thread per rank), each rank
/// holding an even share of the experts (<see cref="EpConfig.EvenSplit"/>). bench --ep times it.
/// </summary>
internal sealed class EpSession : IDisposable
{
    private readonly MoeContext[] _contexts;
    private readonly EpMoeLayer[] _layers;

    private EpSession(MoeContext[] contexts, EpMoeLayer[] layers)
    {
        _contexts = contexts;
        _layers = layers;
    }

    public int WorldSize => _layers.Length;

    /// <summary>The contexts of the ranks (one per rank).</summary>
    public IReadOnlyList<MoeContext> Contexts => _contexts;

    /// <summary>
    /// Opens a context per rank (<paramref name="threads"/> CPU workers each; 0 shares the hardware threads out) and
    /// creates every rank's part of the layer, each on its own thread as the collective creation needs.
    /// </summary>
    public static EpSession Create(
        Backend backend, int worldSize, int threads, IExpertWeights weights, int topK, int maxTokensPerRank,
        float routedScalingFactor, ExpertSpecialization specialization, IProgress<double>? progress,
        CancellationToken cancellationToken)
    {
        int perRank = threads > 0 ? threads : Math.Max(1, Environment.ProcessorCount / worldSize);
        var contexts = new List<MoeContext>();
        var layers = new EpMoeLayer?[worldSize];
        EpCommunicator[] comms = [];
        try
        {
            for (int r = 0; r < worldSize; r++)
            {
                contexts.Add(BackendChoice.Open(backend, perRank));
            }

            comms = EpCommunicator.CreateLoopback(contexts);
            // Uploads first, all of them: creation is collective, so a rank must not fail (or be cancelled) on its own
            // between the two; cancelling creation itself stops every rank alike.
            var tensors = new ExpertTensors?[worldSize];
            try
            {
                RunRanks(worldSize, r =>
                {
                    (int begin, int count) = EpConfig.EvenSplit(weights.Experts, worldSize, r);
                    tensors[r] = ExpertTensors.Upload(contexts[r], new ExpertRange(weights, begin, count), cancellationToken: cancellationToken);
                });
                int created = 0;
                RunRanks(worldSize, r =>
                {
                    ExpertTensors t = tensors[r]!;
                    layers[r] = EpMoeLayer.Create(
                        comms[r], Config(weights, worldSize, r, topK, maxTokensPerRank, routedScalingFactor, specialization),
                        t.W13, t.W13Scales, t.W2, t.W2Scales, cancellationToken: cancellationToken);
                    progress?.Report((double)Interlocked.Increment(ref created) / worldSize);
                });
            }
            finally
            {
                foreach (ExpertTensors? t in tensors)
                {
                    t?.Dispose();
                }
            }

            return new EpSession([.. contexts], [.. layers.Select(l => l!)]);
        }
        catch
        {
            foreach (EpMoeLayer? layer in layers)
            {
                layer?.Dispose();
            }

            contexts.ForEach(c => c.Dispose());
            throw;
        }
        finally
        {
            // The layers keep their endpoints alive.
            foreach (EpCommunicator comm in comms)
            {
                comm.Dispose();
            }
        }
    }

    private static EpConfig Config(
        IExpertWeights weights, int worldSize, int rank, int topK, int maxTokensPerRank, float routedScalingFactor,
        ExpertSpecialization specialization)
    {
        (int begin, int count) = EpConfig.EvenSplit(weights.Experts, worldSize, rank);
        MoeLayerOptions options = specialization.Apply(ExpertTensors.LayerOptions(weights, topK, maxTokensPerRank, routedScalingFactor));
        return new EpConfig
        {
            Experts = weights.Experts,
            TopK = topK,
            Hidden = weights.Hidden,
            Intermediate = weights.Intermediate,
            MaxTokensPerRank = maxTokensPerRank,
            ExpertBegin = begin,
            LocalExperts = count,
            RoutedScalingFactor = routedScalingFactor,
            W13Interleaved = options.W13Interleaved,
            ExpertSpecializationUp = options.ExpertSpecializationUp,
            ExpertSpecializationDown = options.ExpertSpecializationDown,
            RecordTimings = true,
        };
    }

    /// <summary>
    /// Runs <paramref name="warmup"/> untimed and <paramref name="runs"/> timed forward passes of every rank on its
    /// <paramref name="inputs"/>; returns each rank's medians and the median of the slowest rank's time per pass.
    /// </summary>
    public (EpRankTiming[] Ranks, double MedianSeconds) Time(
        IReadOnlyList<RoutedInputs> inputs, int warmup, int runs, Action? afterEachRun, CancellationToken cancellationToken)
    {
        var samples = new List<double>[WorldSize][];
        var slowest = new double[runs];
        bool stop = false, failed = false;
        // Every rank makes the same number of collective calls: they stop together, at a pass boundary, when cancelled
        // or when a rank failed (an EP forward that fails on one rank still completes its exchanges on every rank).
        using var pass = new Barrier(WorldSize, _ => stop = Volatile.Read(ref failed) || cancellationToken.IsCancellationRequested);
        RunRanks(WorldSize, r =>
        {
            try
            {
                samples[r] = TimeRank(r, inputs[r], warmup, runs, pass, () => stop, slowest, r == 0 ? afterEachRun : null);
            }
            catch
            {
                Volatile.Write(ref failed, true);
                pass.RemoveParticipant();
                throw;
            }
        });
        cancellationToken.ThrowIfCancellationRequested();
        EpRankTiming[] ranks = [.. Enumerable.Range(0, WorldSize).Select(r => new EpRankTiming(
            r, Median(samples[r][0]), Median(samples[r][1]), Median(samples[r][2]), Median(samples[r][3])))];
        return (ranks, Median([.. slowest]));
    }

    // Rank r's passes, one per barrier phase: its dispatch, compute, combine and call times (seconds) per timed pass.
    private List<double>[] TimeRank(
        int r, RoutedInputs input, int warmup, int runs, Barrier pass, Func<bool> stop, double[] slowest, Action? afterEachRun)
    {
        List<double>[] samples = [[], [], [], []];
        long h = _layers[r].Config.Hidden;
        MoeContext context = _contexts[r];
        using DeviceTensor x = DeviceTensor.Allocate(context, DataType.BFloat16, input.Tokens, h);
        using DeviceTensor topkIdx = DeviceTensor.Allocate(context, DataType.Int32, input.Tokens, input.TopK);
        using DeviceTensor topkWeights = DeviceTensor.Allocate(context, DataType.Float32, input.Tokens, input.TopK);
        using DeviceTensor y = DeviceTensor.Allocate(context, DataType.BFloat16, input.Tokens, h);
        x.CopyFrom<BFloat16>(input.X);
        topkIdx.CopyFrom<int>(input.TopkIdx);
        topkWeights.CopyFrom<float>(input.TopkWeights);
        var stopwatch = new Stopwatch();
        for (int run = 0; run < warmup + runs; run++)
        {
            pass.SignalAndWait(CancellationToken.None);
            if (stop())
            {
                break;
            }

            stopwatch.Restart();
            _layers[r].Forward(x, null, topkIdx, topkWeights, y);
            context.Synchronize();
            double seconds = stopwatch.Elapsed.TotalSeconds;
            if (run < warmup)
            {
                continue;
            }

            EpTimings t = _layers[r].Timings;
            samples[0].Add(t.DispatchMilliseconds / 1e3);
            samples[1].Add(t.ComputeMilliseconds / 1e3);
            samples[2].Add(t.CombineMilliseconds / 1e3);
            samples[3].Add(seconds);
            InterlockedMax(ref slowest[run - warmup], seconds);
            afterEachRun?.Invoke();
        }

        return samples;
    }

    public void Dispose()
    {
        foreach (EpMoeLayer layer in _layers)
        {
            layer.Dispose();
        }

        foreach (MoeContext context in _contexts)
        {
            context.Dispose();
        }
    }

    private static double Median(List<double> values) => Timing.FromSamples(values).MedianSeconds;

    private static void InterlockedMax(ref double target, double value)
    {
        double seen = Volatile.Read(ref target);
        while (value > seen)
        {
            double previous = Interlocked.CompareExchange(ref target, value, seen);
            if (previous == seen)
            {
                return;
            }

            seen = previous;
        }
    }

    // One dedicated thread per rank: a rank waits in collective calls for all others to arrive, so none may wait for a
    // pool thread. The first failure is rethrown (creation fails on every rank alike).
    private static void RunRanks(int worldSize, Action<int> rank)
    {
        Task[] tasks = [.. Enumerable.Range(0, worldSize).Select(r => Task.Factory.StartNew(
            () => rank(r), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default))];
        try
        {
            Task.WaitAll(tasks);
        }
        catch (AggregateException e)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
            throw;
        }
    }
}
