using System.Text.Json;
using FluentAssertions;
using MegaMoe.Cli.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Cli.Tests.Commands;

public sealed class RunCommandTests
{
    [Test]
    public void ARandomLayerIsTimedAndWithinTheFloat64Bound()
    {
        CliResult result = CliRunner.Run(["run", .. CliRunner.TinyShape, "--tokens", "8", "--runs", "3", "--backend", "cpu", "--json"]);
        result.ExitCode.Should().Be(0, result.ToString());
        JsonElement run = result.Json();
        run.GetProperty("model").GetString().Should().Be("custom");
        run.GetProperty("experts").GetInt32().Should().Be(4);
        run.GetProperty("tokens").GetInt32().Should().Be(8);
        run.GetProperty("backend").GetString().Should().Be("cpu");
        run.GetProperty("runs").GetInt32().Should().Be(3);
        run.GetProperty("median_us").GetDouble().Should().BePositive();
        run.GetProperty("min_us").GetDouble().Should().BeLessThanOrEqualTo(run.GetProperty("max_us").GetDouble());
        run.GetProperty("tflops").GetDouble().Should().BePositive();
        run.GetProperty("tokens_per_second").GetDouble().Should().BePositive();
        // The tiny shape (H 256, I 128) gets the small-shape bound by default (docs/NUMERICS.md section 4).
        run.GetProperty("error_limit").GetDouble().Should().Be(5e-3);
        run.GetProperty("error").GetDouble().Should().BeInRange(0, 5e-3);
        run.GetProperty("passed").GetBoolean().Should().BeTrue();
        run.GetProperty("expert_specialization").GetString().Should().Be("none");
        run.TryGetProperty("note", out _).Should().BeFalse("there is no fallback to note any more");
        result.Stderr.Should().BeEmpty();
    }

    [Test]
    public void BestIsTheLibrarysBestBackend()
    {
        CliResult result = CliRunner.Run(["run", .. CliRunner.TinyShape, "--tokens", "4", "--runs", "1", "--json"]);
        result.ExitCode.Should().Be(0, result.ToString());
        result.Json().GetProperty("backend").GetString().Should().Be(CliRunner.CudaAvailable ? "cuda" : "cpu");
        result.Stderr.Should().BeEmpty();
    }

    [Test]
    public void TheTableShowsTimeThroughputAndError()
    {
        CliResult result = CliRunner.Run(["run", .. CliRunner.TinyShape, "--tokens", "4", "--runs", "1"]);
        result.ExitCode.Should().Be(0, result.ToString());
        result.Stdout.Should().ContainAll("custom: E=4 experts, top-2, H=256, I=128", "forward", "median", "tokens/s", "TFLOPS", "error vs float64", "OK");
    }

    [Test]
    public void AnErrorAboveTheLimitExitsWithOne()
    {
        CliResult result = CliRunner.Run(["run", .. CliRunner.TinyShape, "--tokens", "4", "--runs", "1", "--max-error", "1e-12", "--json"]);
        result.ExitCode.Should().Be(ExitCodes.CheckFailed, result.ToString());
        result.Json().GetProperty("passed").GetBoolean().Should().BeFalse();
        result.Json().GetProperty("error_limit").GetDouble().Should().Be(1e-12);
    }

    [Test]
    public void NoReferenceSkipsTheCheck()
    {
        CliResult result = CliRunner.Run(["run", .. CliRunner.TinyShape, "--tokens", "1", "--runs", "1", "--no-reference", "--json"]);
        result.ExitCode.Should().Be(0, result.ToString());
        result.Json().GetProperty("error").ValueKind.Should().Be(JsonValueKind.Null);
    }

    [TestCase(1)]
    [TestCase(2)]
    public void ACheckpointLayerRunsByName(int shards)
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path, shards);
        CliResult result = CliRunner.Run("run", "--checkpoint", dir.Path, "--layer", "3", "--top-k", "2", "--tokens", "6", "--runs", "1", "--json");
        result.ExitCode.Should().Be(0, result.ToString());
        JsonElement run = result.Json();
        run.GetProperty("checkpoint").GetString().Should().Be(dir.Path);
        run.GetProperty("layer").GetInt32().Should().Be(3);
        (run.GetProperty("experts").GetInt32(), run.GetProperty("hidden").GetInt64(), run.GetProperty("intermediate").GetInt64()).Should().Be((4, 256L, 128L));
        run.GetProperty("passed").GetBoolean().Should().BeTrue();
    }

    [Test]
    public void CheckpointMistakesAreExplained()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path);
        CliRunner.Run("run", "--checkpoint", dir.Path).Should().Match<CliResult>(r => r.ExitCode == ExitCodes.Usage && r.Stderr.Contains("--checkpoint and --layer go together"));
        CliRunner.Run("run", "--checkpoint", dir.Path, "--layer", "3", "--hidden", "512").ExitCode.Should().Be(ExitCodes.Usage);

        CliResult wrongLayer = CliRunner.Run("run", "--checkpoint", dir.Path, "--layer", "9", "--json");
        wrongLayer.ExitCode.Should().Be(ExitCodes.DataError, wrongLayer.ToString());
        wrongLayer.Json().GetProperty("kind").GetString().Should().Be("data");
        wrongLayer.Stderr.Should().Contain("layer 9 has no routed experts").And.Contain("layers with experts: 3");

        CliResult missing = CliRunner.Run("run", "--checkpoint", Path.Combine(dir.Path, "nope"), "--layer", "3");
        missing.ExitCode.Should().Be(ExitCodes.DataError, missing.ToString());
        missing.Stderr.Should().Contain("no such checkpoint directory");

        File.WriteAllBytes(dir.File("model.safetensors"), new byte[5]);
        CliResult corrupt = CliRunner.Run("run", "--checkpoint", dir.Path, "--layer", "3");
        corrupt.ExitCode.Should().Be(ExitCodes.DataError, corrupt.ToString());
        corrupt.Stderr.Should().Contain("model.safetensors: the file is 5 bytes");
    }

    [Test]
    public void AnExplicitGpuWithoutOneExitsWithThree()
    {
        if (CliRunner.CudaAvailable)
        {
            Assert.Ignore("a CUDA backend is available here");
        }

        CliResult result = CliRunner.Run(["run", .. CliRunner.TinyShape, "--backend", "cuda", "--json"]);
        result.ExitCode.Should().Be(ExitCodes.BackendUnavailable, result.ToString());
        result.Json().GetProperty("kind").GetString().Should().Be("backend-unavailable");
        result.Stderr.Should().Contain("backend unavailable").And.Contain("CUDA");
    }
}
