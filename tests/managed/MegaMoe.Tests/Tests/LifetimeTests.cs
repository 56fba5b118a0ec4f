using System.Runtime.CompilerServices;
using FluentAssertions;
using MegaMoe.Tests.Reference;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>Dispose, double dispose, use after dispose and finalization of every handle type.</summary>
[TestFixture]
[NonParallelizable]
public sealed class LifetimeTests
{
    private static readonly MoeLayerOptions SmallLayer = new()
    {
        Experts = 2,
        TopK = 1,
        Hidden = 128,
        Intermediate = 128,
        MaxTokens = 4,
    };

    private static readonly EpConfig SmallGroup = new()
    {
        Experts = 2,
        TopK = 1,
        Hidden = 128,
        MaxTokensPerRank = 4,
        ExpertBegin = 0,
        LocalExperts = 2,
    };

    [Test]
    public void DisposingEveryObjectReleasesItImmediately()
    {
        long baseline = SettledLiveObjectCount();
        MoeContext context = MoeContext.Create(Backend.Cpu);
        DeviceTensor tensor = DeviceTensor.Allocate(context, DataType.Float32, 16);
        RoutedGemmPlan plan = RoutedGemmPlan.Create(context, 4, 1, 2, 128, 128);
        MoeLayer layer = CreateLayer(context);
        EpCommunicator comm = EpCommunicator.CreateLoopback([context])[0];
        EpDispatcher dispatcher = EpDispatcher.Create(comm, SmallGroup);
        MegaMoeLibrary.LiveObjectCount.Should().Be(baseline + 6);

        dispatcher.Dispose();
        comm.Dispose();
        layer.Dispose();
        plan.Dispose();
        tensor.Dispose();
        context.Dispose();

        MegaMoeLibrary.LiveObjectCount.Should().Be(baseline);
    }

    [Test]
    public void DoubleDisposeIsHarmless()
    {
        using MoeContext context = MoeContext.Create(Backend.Cpu);
        var tensor = DeviceTensor.Allocate(context, DataType.Int32, 4);
        var plan = RoutedGemmPlan.Create(context, 4, 1, 2, 128, 128);
        MoeLayer layer = CreateLayer(context);
        EpCommunicator comm = EpCommunicator.CreateLoopback([context])[0];
        EpDispatcher dispatcher = EpDispatcher.Create(comm, SmallGroup);

        foreach (IDisposable disposable in new IDisposable[] { tensor, plan, layer, dispatcher, comm, context })
        {
            disposable.Dispose();
            FluentActions.Invoking(disposable.Dispose).Should().NotThrow();
        }
    }

    [Test]
    public void UseAfterDisposeThrowsObjectDisposedException()
    {
        MoeContext context = MoeContext.Create(Backend.Cpu);
        DeviceTensor tensor = DeviceTensor.Allocate(context, DataType.Float32, 1, 128);
        DeviceTensor other = DeviceTensor.Allocate(context, DataType.Float32, 1, 128);
        RoutedGemmPlan plan = RoutedGemmPlan.Create(context, 4, 1, 2, 128, 128);
        MoeLayer layer = CreateLayer(context);
        EpCommunicator comm = EpCommunicator.CreateLoopback([context])[0];
        EpDispatcher dispatcher = EpDispatcher.Create(comm, SmallGroup);
        tensor.Dispose();
        plan.Dispose();
        layer.Dispose();
        dispatcher.Dispose();
        comm.Dispose();
        context.Dispose();

        FluentActions.Invoking(() => tensor.ToArray<float>()).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => tensor.Fill(0)).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => context.Synchronize()).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => context.DeviceInfo).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => context.NumThreads = 1).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => DeviceTensor.Allocate(context, DataType.Float32, 1)).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => plan.Run(other, other, other, other, other, null, other)).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => layer.Forward(other, null, other, other, other)).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => dispatcher.Combine(other, other)).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => EpDispatcher.Create(comm, SmallGroup)).Should().Throw<ObjectDisposedException>();
        other.Dispose();
    }

    [Test]
    public void DisposedTensorArgumentThrowsObjectDisposedException()
    {
        using MoeContext context = MoeContext.Create(Backend.Cpu);
        using var scope = new DeviceScope(context);
        DeviceTensor x = scope.Allocate(DataType.Float32, 1, 128);
        DeviceTensor q = DeviceTensor.Allocate(context, DataType.Float8E4M3, 1, 128);
        q.Dispose();

        FluentActions.Invoking(() => context.QuantizeActivations(x, q, scope.Allocate(DataType.Float32, 1, 1)))
            .Should().Throw<ObjectDisposedException>().Which.ObjectName.Should().Contain("DeviceTensor");
    }

    [Test]
    public void ObjectsKeepTheirContextAlive()
    {
        long baseline = SettledLiveObjectCount();
        MoeContext context = MoeContext.Create(Backend.Cpu);
        using DeviceTensor tensor = DeviceTensor.Allocate(context, DataType.Int64, 3);
        context.Dispose();

        tensor.CopyFrom<long>([1, 2, 3]);

        tensor.ToArray<long>().Should().Equal(1, 2, 3);
        tensor.Dispose();
        MegaMoeLibrary.LiveObjectCount.Should().Be(baseline);
    }

    [Test]
    public void FinalizersReleaseObjectsThatWereNotDisposed()
    {
        long baseline = SettledLiveObjectCount();

        CreateAndDrop(25);

        SettledLiveObjectCount().Should().Be(baseline);
    }

    // Not inlined, so no reference to the objects survives in this frame when the caller collects. They are
    // held until the count is checked: a collection inside the loop (frequent with a small gen0 budget) would
    // otherwise finalize some early and make the count depend on GC timing.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CreateAndDrop(int count)
    {
        var created = new List<object>();
        for (int i = 0; i < count; i++)
        {
            MoeContext context = MoeContext.Create(Backend.Cpu);
            DeviceTensor tensor = DeviceTensor.Allocate(context, DataType.BFloat16, 64, 128);
            tensor.Fill(0);
            created.Add(context);
            created.Add(tensor);
            created.Add(RoutedGemmPlan.Create(context, 8, 2, 4, 128, 256));
            if (i % 5 == 0)
            {
                created.Add(CreateLayer(context));
                EpCommunicator communicator = EpCommunicator.CreateLoopback([context])[0];
                created.Add(communicator);
                created.Add(EpDispatcher.Create(communicator, SmallGroup));
            }
        }

        MegaMoeLibrary.LiveObjectCount.Should().BeGreaterThanOrEqualTo(3L * count);
        GC.KeepAlive(created);
    }

    private static long SettledLiveObjectCount()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        return MegaMoeLibrary.LiveObjectCount;
    }

    private static MoeLayer CreateLayer(MoeContext context)
    {
        MoeProblem problem = MoeProblem.Random(new Random(1), SmallLayer, 1, 0);
        using var scope = new DeviceScope(context);
        return MoeLayer.Create(
            context,
            SmallLayer,
            scope.Upload(DataType.Float8E4M3, problem.W13.Codes, problem.W13.Shape(batched: true)),
            scope.Upload(DataType.Float32, problem.W13.Scales, problem.W13.WeightScaleShape(batched: true)),
            scope.Upload(DataType.Float8E4M3, problem.W2.Codes, problem.W2.Shape(batched: true)),
            scope.Upload(DataType.Float32, problem.W2.Scales, problem.W2.WeightScaleShape(batched: true)));
    }
}
