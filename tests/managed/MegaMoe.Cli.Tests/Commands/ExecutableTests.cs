using FluentAssertions;
using MegaMoe.Cli.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Cli.Tests.Commands;

/// <summary>
/// The commands through a real executable, one process per call: exit codes as a shell sees them, and nothing that
/// only works in-process. Run against the JIT apphost here and against the NativeAOT executable in CI.
/// </summary>
public abstract class ExecutableTests
{
    protected abstract string Executable { get; }

    [Test]
    public void InfoPrintsJson()
    {
        CliResult result = CliProcess.Run(Executable, "info", "--json");
        result.ExitCode.Should().Be(0, result.ToString());
        result.Json().GetProperty("backends")[0].GetProperty("available").GetBoolean().Should().BeTrue();
    }

    [Test]
    public void HelpAndUsageErrors()
    {
        CliProcess.Run(Executable, "--help").ExitCode.Should().Be(0);
        CliResult bad = CliProcess.Run(Executable, "run", "--runs", "0");
        bad.ExitCode.Should().Be(ExitCodes.Usage, bad.ToString());
        bad.Stderr.Should().Contain("--runs takes a positive integer");
    }

    [Test]
    public void RunBenchVerifyAndConvertWork()
    {
        using var dir = new TempDirectory();
        CliResult run = CliProcess.Run(Executable, ["run", .. CliRunner.TinyShape, "--tokens", "4", "--runs", "2", "--json"]);
        run.ExitCode.Should().Be(0, run.ToString());
        run.Json().GetProperty("passed").GetBoolean().Should().BeTrue();

        CliResult bench = CliProcess.Run(Executable, ["bench", .. CliRunner.TinyShape[2..], "--models", "custom", "--tokens", "1,4", "--runs", "1", "-o", dir.File("b.json"), "--plot", dir.File("b.png")]);
        bench.ExitCode.Should().Be(0, bench.ToString());
        new FileInfo(dir.File("b.png")).Length.Should().BeGreaterThan(1000);

        CliResult verify = CliProcess.Run(Executable, ["verify", .. CliRunner.TinyShape, "--tokens", "2"]);
        verify.ExitCode.Should().Be(CliRunner.CudaAvailable ? 0 : ExitCodes.BackendUnavailable, verify.ToString());

        string input = dir.Sub("bf16");
        TestCheckpoints.WriteBf16(input, shards: 2);
        CliResult convert = CliProcess.Run(Executable, "convert", input, dir.File("fp8"), "--interleave", "--json");
        convert.ExitCode.Should().Be(0, convert.ToString());
        CliResult fromCheckpoint = CliProcess.Run(Executable, "run", "--checkpoint", dir.File("fp8"), "--layer", "3", "--top-k", "2", "--tokens", "3", "--runs", "1", "--json");
        fromCheckpoint.ExitCode.Should().Be(0, fromCheckpoint.ToString());
    }
}

/// <summary>The JIT-compiled apphost next to this test assembly.</summary>
public sealed class ApphostExecutableTests : ExecutableTests
{
    protected override string Executable => Path.Combine(AppContext.BaseDirectory, "MegaMoe.Cli");
}

/// <summary>The NativeAOT executable that MEGAMOE_CLI_AOT names (.ci/run publishes it); ignored when unset.</summary>
[Category("Aot")]
public sealed class AotExecutableTests : ExecutableTests
{
    protected override string Executable =>
        Environment.GetEnvironmentVariable("MEGAMOE_CLI_AOT") is { Length: > 0 } path
            ? path
            : throw new IgnoreException("MEGAMOE_CLI_AOT does not name a NativeAOT megamoe executable");
}
