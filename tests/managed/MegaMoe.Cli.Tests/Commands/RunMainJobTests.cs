using System.Text.Json;
using FluentAssertions;
using MegaMoe.Cli.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Cli.Tests.Commands;

/// <summary>
/// <c>megamoe run</c> as the repository's main job (scripts/demo.sh runs it with the user's arguments): its default layer
/// and what it reports besides time and error.
/// </summary>
public sealed class RunMainJobTests
{
    // H and I are made small so the CPU backend answers at once; E and top-k are what the test is about.
    private static readonly string[] SmallLayer = ["--hidden", "256", "--intermediate", "128", "--tokens", "4", "--runs", "1", "--backend", "cpu", "--json"];

    [Test]
    public void WithoutModelOrExpertsTheLayerIsDeepSeekV3WithThirtyTwoExperts()
    {
        CliResult result = CliRunner.Run(["run", .. SmallLayer]);
        result.ExitCode.Should().Be(0, result.ToString());
        JsonElement run = result.Json();
        run.GetProperty("model").GetString().Should().Be("deepseek-v3");
        (run.GetProperty("experts").GetInt32(), run.GetProperty("top_k").GetInt32()).Should().Be((32, 8));
        run.GetProperty("passed").GetBoolean().Should().BeTrue();
    }

    [TestCase("--model", "deepseek-v3", 256)]
    [TestCase("--experts", "12", 12)]
    [TestCase("--model", "qwen3-30b", 128)]
    public void AGivenModelOrExpertCountIsKept(string option, string value, int experts)
    {
        CliResult result = CliRunner.Run(["run", option, value, .. SmallLayer, "--no-reference"]);
        result.ExitCode.Should().Be(0, result.ToString());
        result.Json().GetProperty("experts").GetInt32().Should().Be(experts);
    }

    [Test]
    public void TheDefaultIsNamedInHelp()
    {
        CliRunner.Run("run", "--help").Stdout.Should().Contain("32 when --model is not given either");
    }

    [Test]
    public void TheReportNamesTheLibraryWeightsWorkspaceAndReference()
    {
        CliResult result = CliRunner.Run(["run", .. CliRunner.TinyShape, "--tokens", "3", "--runs", "1", "--backend", "cpu", "--json"]);
        result.ExitCode.Should().Be(0, result.ToString());
        JsonElement run = result.Json();
        run.GetProperty("library").GetString().Should().Be(MegaMoeLibrary.Path);
        run.GetProperty("experts_used").GetInt32().Should().BeInRange(2, 4, "3 tokens, each routed to 2 distinct experts of 4");
        // 4 experts of w13 [256, 256] and w2 [256, 128] FP8 codes, with 4 + 2 float32 block scales each.
        run.GetProperty("weight_bytes").GetInt64().Should().Be(4 * ((256 * 256) + (256 * 128) + (6 * 4)));
        run.GetProperty("workspace_bytes").GetInt64().Should().BePositive();
        run.GetProperty("reference_seconds").GetDouble().Should().BePositive();

        CliResult table = CliRunner.Run(["run", .. CliRunner.TinyShape, "--tokens", "3", "--runs", "1", "--backend", "cpu"]);
        table.Stdout.Should().ContainAll(
            $"MegaMoe {MegaMoeLibrary.Version.ToString(3)}", "routed to", "weights", "GB", "workspace", "reference computed in");
    }

    [Test]
    public void WithoutTheReferenceNoReferenceTimeIsReported()
    {
        CliResult result = CliRunner.Run(["run", .. CliRunner.TinyShape, "--tokens", "3", "--runs", "1", "--no-reference", "--json"]);
        result.ExitCode.Should().Be(0, result.ToString());
        result.Json().GetProperty("reference_seconds").ValueKind.Should().Be(JsonValueKind.Null);
    }
}
