using System.Text.Json;
using FluentAssertions;
using MegaMoe.Cli.Models;
using MegaMoe.Cli.Tests.Support;
using MegaMoe.Cli.Verify;
using NUnit.Framework;

namespace MegaMoe.Cli.Tests.Commands;

public sealed class VerifyCommandTests
{
    [Test]
    public void WithoutAGpuVerifyExitsWithThreeAndSaysWhy()
    {
        if (CliRunner.CudaAvailable)
        {
            Assert.Ignore("a CUDA backend is available here");
        }

        CliResult result = CliRunner.Run(["verify", .. CliRunner.TinyShape]);
        result.ExitCode.Should().Be(ExitCodes.BackendUnavailable, result.ToString());
        result.Stderr.Should().Contain("verify compares the CUDA backend with the CPU backend, but it is unavailable here: megamoe_context_create:");
        result.Stdout.Should().BeEmpty();

        CliResult json = CliRunner.Run(["verify", .. CliRunner.TinyShape, "--json"]);
        json.ExitCode.Should().Be(ExitCodes.BackendUnavailable);
        json.Json().GetProperty("exit_code").GetInt32().Should().Be(ExitCodes.BackendUnavailable);
    }

    [Test]
    public void TheHarnessAgreesWithItselfOnTheCpu()
    {
        CliResult result = CliRunner.Run(["verify", .. CliRunner.TinyShape, "--backend", "cpu", "--tokens", "1,7", "--json"]);
        result.ExitCode.Should().Be(0, result.ToString());
        JsonElement report = result.Json();
        report.EnumerateObject().Select(p => p.Name).Should().Equal("backend", "device", "expert_specialization", "passed", "failed", "checks");
        report.GetProperty("passed").GetInt32().Should().Be(8);
        report.GetProperty("failed").GetInt32().Should().Be(0);
        report.GetProperty("expert_specialization").GetString().Should().Be("none");
        JsonElement[] checks = [.. report.GetProperty("checks").EnumerateArray()];
        checks.Select(c => c.GetProperty("check").GetString()).Distinct().Should().Equal("quantize-activations", "gemm-dense", "gemm-grouped-offsets", "moe-layer");
        checks.Should().OnlyContain(c => c.GetProperty("status").GetString() == "pass" && c.GetProperty("metric").GetDouble() == 0);
    }

    [Test]
    public void TheTableEndsWithTheVerdict()
    {
        CliResult result = CliRunner.Run("verify", "--models", "custom", "--experts", "4", "--top-k", "2", "--hidden", "256", "--intermediate", "128", "--backend", "cpu", "--tokens", "3");
        result.ExitCode.Should().Be(0, result.ToString());
        result.Stdout.Should().Contain("gemm-grouped-offsets").And.Contain("verify PASSED - 4 of 4 checks passed (0 failed)");
        result.Stdout.Should().NotContain("skipped");
    }

    [Test]
    public void AnOperationTheBackendDoesNotSupportFailsItsCheck()
    {
        var problem = new ParityProblem(new ModelShape("custom", 4, 2, 256, 128, 1f), 3, 1);
        ParityCheck check = ParityChecks.Check(problem, "moe-layer", ParityChecks.NumericLimit, "layer output", () =>
            throw new MegaMoeUnsupportedException("megamoe_moe_forward: not on this backend"));
        check.Status.Should().Be(ParityCheck.Fail);
        check.Metric.Should().BeNull();
        check.Limit.Should().Be(ParityChecks.NumericLimit);
        check.Detail.Should().Be("not supported on this backend: megamoe_moe_forward: not on this backend");
        (check.Model, check.Tokens, check.Check).Should().Be(("custom", 3, "moe-layer"));
    }

    [Test]
    public void OtherFailuresOfAnOperationAreNotTurnedIntoChecks()
    {
        var problem = new ParityProblem(new ModelShape("custom", 4, 2, 256, 128, 1f), 1, 1);
        Action act = () => ParityChecks.Check(problem, "gemm-dense", ParityChecks.NumericLimit, "x", () => throw new MegaMoeDeviceException("boom"));
        act.Should().Throw<MegaMoeDeviceException>();
        ParityChecks.Check(problem, "gemm-dense", ParityChecks.NumericLimit, "x", () => 2e-4).Status.Should().Be(ParityCheck.Fail);
        ParityChecks.Check(problem, "gemm-dense", ParityChecks.NumericLimit, "x", () => 1e-5).Status.Should().Be(ParityCheck.Pass);
    }

    [Test]
    public void BestIsNotABackendToVerify() =>
        CliRunner.Run(["verify", .. CliRunner.TinyShape, "--backend", "best"]).ExitCode.Should().Be(ExitCodes.Usage);
}
