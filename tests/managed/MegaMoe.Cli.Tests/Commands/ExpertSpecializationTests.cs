using System.Runtime.InteropServices;
using System.Text.Json;
using FluentAssertions;
using MegaMoe.Checkpoints.Synthetic;
using MegaMoe.Cli.Running;
using MegaMoe.Cli.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Cli.Tests.Commands;

/// <summary>
/// --expert-specialization of run, bench and verify. The CPU backend accepts MEGAMOE_MOE_EXPERT_SPECIALIZATION_UP/DOWN
/// and ignores them, so here every value must give exactly the output of none.
/// </summary>
public sealed class ExpertSpecializationTests
{
    private static readonly string[] Values = ["none", "up", "down", "both"];

    [TestCase("none", false, false)]
    [TestCase("up", true, false)]
    [TestCase("down", false, true)]
    [TestCase("both", true, true)]
    public void EachValueSetsTheLayerFlags(string name, bool up, bool down)
    {
        ExpertSpecialization value = ExpertSpecializations.Parse(name);
        value.Name().Should().Be(name);
        var options = new MoeLayerOptions { Experts = 4, TopK = 2, Hidden = 256, Intermediate = 128, MaxTokens = 8, RoutedScalingFactor = 2.5f };
        MoeLayerOptions applied = value.Apply(options);
        (applied.ExpertSpecializationUp, applied.ExpertSpecializationDown).Should().Be((up, down));
        (applied with { ExpertSpecializationUp = false, ExpertSpecializationDown = false }).Should().Be(options, "nothing else changes");
    }

    [Test]
    public void TheCpuLayerOutputIsBitwiseTheSameForEveryValue()
    {
        var weights = new SyntheticMoe(4, 256, 128, seed: 7);
        var inputs = RoutedInputs.Random(9, 256, 4, 2, seed: 7);
        using MoeContext context = BackendChoice.Open(Backend.Cpu, threads: 0);
        byte[]? expected = null;
        foreach (string name in Values)
        {
            using LayerSession session = LayerSession.Create(context, weights, 2, 9, 1.5f, ExpertSpecializations.Parse(name), null, CancellationToken.None);
            session.Layer.Options.ExpertSpecializationUp.Should().Be(name is "up" or "both");
            session.Layer.Options.ExpertSpecializationDown.Should().Be(name is "down" or "both");
            (_, BFloat16[] output) = session.Time(inputs, warmup: 0, runs: 1, null, CancellationToken.None);
            byte[] bytes = MemoryMarshal.AsBytes(output.AsSpan()).ToArray();
            bytes.Should().Contain(b => b != 0, "the layer computed something");
            if (expected is null)
            {
                expected = bytes;
            }
            else
            {
                bytes.Should().Equal(expected, $"--expert-specialization {name} on the CPU");
            }
        }
    }

    [Test]
    public void RunReportsItAndTheCpuResultIsThatOfNone()
    {
        double? noneError = null;
        foreach (string name in Values)
        {
            CliResult result = CliRunner.Run(["run", .. CliRunner.TinyShape, "--tokens", "8", "--runs", "1", "--backend", "cpu", "--expert-specialization", name, "--json"]);
            result.ExitCode.Should().Be(0, result.ToString());
            JsonElement run = result.Json();
            run.GetProperty("expert_specialization").GetString().Should().Be(name);
            run.GetProperty("passed").GetBoolean().Should().BeTrue();
            double error = run.GetProperty("error").GetDouble();
            noneError ??= error;
            error.Should().Be(noneError.Value, $"--expert-specialization {name} must not change the CPU output");
        }
    }

    [Test]
    public void TheDefaultIsNoneAndTheTableSaysTheCpuIgnoresIt()
    {
        CliRunner.Run(["run", .. CliRunner.TinyShape, "--tokens", "2", "--runs", "1", "--backend", "cpu", "--no-reference", "--json"])
            .Json().GetProperty("expert_specialization").GetString().Should().Be("none");

        CliResult table = CliRunner.Run(["run", .. CliRunner.TinyShape, "--tokens", "2", "--runs", "1", "--backend", "cpu", "--expert-specialization", "both"]);
        table.ExitCode.Should().Be(0, table.ToString());
        table.Stdout.Should().Contain("expert specialization").And.Contain("both (the CPU backend ignores it)");
    }

    [Test]
    public void BenchRecordsItInEveryResult()
    {
        CliResult result = CliRunner.Run(["bench", .. CliRunner.TinyShape[2..], "--models", "custom", "--tokens", "1,4", "--backends", "cpu", "--runs", "1", "--warmup", "0", "--expert-specialization", "up", "--json"]);
        result.ExitCode.Should().Be(0, result.ToString());
        JsonElement[] results = [.. result.Json().GetProperty("results").EnumerateArray()];
        results.Should().HaveCount(2).And.OnlyContain(r => r.GetProperty("expert_specialization").GetString() == "up");

        CliResult plain = CliRunner.Run(["bench", .. CliRunner.TinyShape[2..], "--models", "custom", "--tokens", "1", "--backends", "cpu", "--runs", "1", "--json"]);
        plain.Json().GetProperty("results")[0].GetProperty("expert_specialization").GetString().Should().Be("none");
    }

    [Test]
    public void VerifyChecksTheSpecializedLayer()
    {
        CliResult result = CliRunner.Run(["verify", .. CliRunner.TinyShape, "--backend", "cpu", "--tokens", "5", "--expert-specialization", "both", "--json"]);
        result.ExitCode.Should().Be(0, result.ToString());
        JsonElement report = result.Json();
        report.GetProperty("expert_specialization").GetString().Should().Be("both");
        report.GetProperty("passed").GetInt32().Should().Be(4);
        report.GetProperty("failed").GetInt32().Should().Be(0);
    }

    [TestCase("run")]
    [TestCase("bench")]
    [TestCase("verify")]
    public void OtherValuesAreUsageErrors(string command)
    {
        CliResult result = CliRunner.Run(command, "--expert-specialization", "sideways");
        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Stderr.Should().Contain("sideways");
        CliRunner.Run(command, "--help").Stdout.Should().Contain("--expert-specialization");
    }
}
