using FluentAssertions;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>Context creation, properties and backend probing.</summary>
[TestFixture]
public sealed class ContextTests
{
    [Test]
    public void CpuContextDescribesItsDevice()
    {
        using MoeContext context = MoeContext.Create(Backend.Cpu);

        DeviceInfo info = context.DeviceInfo;

        TestContext.Out.WriteLine(info.ToString());
        context.Backend.Should().Be(Backend.Cpu);
        info.Backend.Should().Be(Backend.Cpu);
        info.DeviceId.Should().Be(0);
        info.Name.Should().NotBeNullOrWhiteSpace();
        info.ComputeCapability.Should().Be(new Version(0, 0));
        info.MultiprocessorCount.Should().BePositive();
        context.ToString().Should().Be("MoeContext (Cpu)");
    }

    [Test]
    public void NumThreadsIsKeptAndReported()
    {
        using MoeContext context = MoeContext.Create(Backend.Cpu);

        context.NumThreads = 1;

        context.NumThreads.Should().Be(1);
        context.DeviceInfo.MultiprocessorCount.Should().Be(1);
        context.Synchronize();
    }

    [Test]
    public void BestBackendIsConcrete()
    {
        using MoeContext context = MoeContext.Create();

        context.Backend.Should().BeOneOf(Backend.Cpu, Backend.Cuda);
        context.Backend.Should().Be(MoeContext.IsBackendAvailable(Backend.Cuda, 0, out _) ? Backend.Cuda : Backend.Cpu);
    }

    [Test]
    public void CpuIsAlwaysAvailable()
    {
        MoeContext.IsBackendAvailable(Backend.Cpu, 0, out string? reason).Should().BeTrue();
        reason.Should().BeNull();
    }

    [Test]
    public void UnavailableBackendComesWithAReason()
    {
        if (MoeContext.IsBackendAvailable(Backend.Cuda, 0, out string? reason))
        {
            Assert.Ignore("The CUDA backend is available here.");
        }

        TestContext.Out.WriteLine(reason);
        reason.Should().NotBeNullOrWhiteSpace();
    }
}
