using System.Text.Json;
using FluentAssertions;
using MegaMoe.Cli.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Cli.Tests.Commands;

public sealed class ConvertCommandTests
{
    [TestCase(false)]
    [TestCase(true)]
    public void AConvertedCheckpointRunsWithinTheBound(bool interleave)
    {
        using var dir = new TempDirectory();
        string input = dir.Sub("bf16"), output = Path.Combine(dir.Path, "fp8");
        TestCheckpoints.WriteBf16(input, shards: 2);
        string[] args = ["convert", input, output, "--backend", "cpu", "--json"];
        CliResult convert = CliRunner.Run(interleave ? [.. args, "--interleave"] : args);
        convert.ExitCode.Should().Be(0, convert.ToString());
        JsonElement report = convert.Json();
        report.GetProperty("tensors_quantized").GetInt32().Should().Be((interleave ? 2 : 3) * TestCheckpoints.Experts);
        report.GetProperty("tensors_copied").GetInt32().Should().Be(3);
        report.GetProperty("interleaved").GetBoolean().Should().Be(interleave);
        report.GetProperty("files").GetArrayLength().Should().Be(3, "two shards and the index");
        report.GetProperty("output_bytes").GetInt64().Should().BeLessThan(report.GetProperty("input_bytes").GetInt64());

        CliResult run = CliRunner.Run("run", "--checkpoint", output, "--layer", "3", "--top-k", "2", "--tokens", "5", "--runs", "1", "--json");
        run.ExitCode.Should().Be(0, run.ToString());
        run.Json().GetProperty("passed").GetBoolean().Should().BeTrue();
    }

    [Test]
    public void TheSummaryNamesTheFiles()
    {
        using var dir = new TempDirectory();
        string input = dir.Sub("bf16");
        TestCheckpoints.WriteBf16(input);
        CliResult result = CliRunner.Run("convert", Path.Combine(input, "model.safetensors"), Path.Combine(dir.Path, "out"), "--ue8m0");
        result.ExitCode.Should().Be(0, result.ToString());
        result.Stdout.Should().ContainAll("quantized", "12 expert matrices", "(UE8M0)", "copied", "model.safetensors");
    }

    [Test]
    public void ExistingOutputNeedsForce()
    {
        using var dir = new TempDirectory();
        string input = dir.Sub("bf16"), output = Path.Combine(dir.Path, "out");
        TestCheckpoints.WriteBf16(input);
        CliRunner.Run("convert", input, output).ExitCode.Should().Be(0);
        CliResult again = CliRunner.Run("convert", input, output);
        again.ExitCode.Should().Be(ExitCodes.Error, again.ToString());
        again.Stderr.Should().Contain("already exists (pass --force");
        CliRunner.Run("convert", input, output, "--force").ExitCode.Should().Be(0);
    }

    [Test]
    public void BadInputIsADataError()
    {
        using var dir = new TempDirectory();
        CliResult missing = CliRunner.Run("convert", Path.Combine(dir.Path, "nope"), Path.Combine(dir.Path, "out"));
        missing.ExitCode.Should().Be(ExitCodes.DataError, missing.ToString());

        string input = dir.Sub("bad");
        File.WriteAllText(Path.Combine(input, "model.safetensors"), "\u0010\0\0\0\0\0\0\0{\"x\": 1}        ");
        CliResult corrupt = CliRunner.Run("convert", input, Path.Combine(dir.Path, "out"), "--json");
        corrupt.ExitCode.Should().Be(ExitCodes.DataError, corrupt.ToString());
        corrupt.Json().GetProperty("error").GetString().Should().Contain("tensor 'x' is a JSON Number");
        Directory.Exists(Path.Combine(dir.Path, "out")).Should().BeFalse("nothing is written when the input is refused");
    }
}
