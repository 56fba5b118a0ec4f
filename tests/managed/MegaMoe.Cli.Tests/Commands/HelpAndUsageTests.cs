using FluentAssertions;
using MegaMoe.Cli.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Cli.Tests.Commands;

public sealed class HelpAndUsageTests
{
    [TestCase]
    [TestCase("info")]
    [TestCase("run")]
    [TestCase("bench")]
    [TestCase("verify")]
    [TestCase("convert")]
    public void EveryCommandHasHelp(params string[] command)
    {
        CliResult result = CliRunner.Run([.. command, "--help"]);
        result.ExitCode.Should().Be(0, result.ToString());
        result.Stdout.Should().Contain("Usage:").And.Contain("--json");
    }

    [Test]
    public void TheRootHelpListsTheCommands()
    {
        CliResult result = CliRunner.Run("--help");
        result.Stdout.Should().ContainAll("info", "run", "bench", "verify", "convert");
    }

    [Test]
    public void NoCommandShowsHelpAndIsAUsageError()
    {
        CliResult result = CliRunner.Run();
        result.ExitCode.Should().Be(ExitCodes.Usage);
        result.Stdout.Should().Contain("Usage:");
    }

    [TestCase("frobnicate")]
    [TestCase("run", "--tokens")]
    [TestCase("run", "--tokens", "many")]
    [TestCase("run", "--tokens", "-3")]
    [TestCase("run", "--model", "gpt-5")]
    [TestCase("run", "--backend", "tpu")]
    [TestCase("run", "--expert-specialization", "all")]
    [TestCase("bench", "--tokens", "1,x")]
    [TestCase("bench", "--backends", "7")]
    [TestCase("convert", "only-one-argument")]
    public void ParseErrorsExitWithTwoAndPointToHelp(params string[] args)
    {
        CliResult result = CliRunner.Run(args);
        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Stderr.Should().StartWith("megamoe: ").And.Contain("--help' for usage.");
        result.Stdout.Should().BeEmpty();
    }

    [Test]
    public void ShapesThatDoNotFitTogetherAreUsageErrors()
    {
        CliRunner.Run("run", "--model", "custom", "--experts", "4").Should().Match<CliResult>(r => r.ExitCode == ExitCodes.Usage && r.Stderr.Contains("--model custom needs"));
        CliRunner.Run("run", "--model", "qwen3-30b", "--experts", "4").Should().Match<CliResult>(r => r.ExitCode == ExitCodes.Usage && r.Stderr.Contains("top-k 8 is larger than the number of experts 4"));
        CliResult json = CliRunner.Run("run", "--json", "--model", "custom", "--experts", "4", "--top-k", "2", "--hidden", "200", "--intermediate", "128");
        json.ExitCode.Should().Be(ExitCodes.Usage);
        json.Json().GetProperty("kind").GetString().Should().Be("usage");
        json.Stderr.Should().Contain("multiples of 128");
    }
}
