using NUnit.Framework;

namespace MegaMoe.Tests.Support;

/// <summary>Base of fixtures that run on one CPU-backend context.</summary>
public abstract class CpuContextFixture
{
    private MoeContext? _cpu;

    /// <summary>The fixture's CPU context.</summary>
    protected MoeContext Cpu => _cpu ?? throw new InvalidOperationException("The fixture is not set up.");

    /// <summary>Creates the context.</summary>
    [OneTimeSetUp]
    public void CreateCpuContext() => _cpu = MoeContext.Create(Backend.Cpu);

    /// <summary>Disposes the context.</summary>
    [OneTimeTearDown]
    public void DisposeCpuContext() => _cpu?.Dispose();
}
