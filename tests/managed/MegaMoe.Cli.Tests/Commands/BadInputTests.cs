using FluentAssertions;
using MegaMoe.Cli.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Cli.Tests.Commands;

/// <summary>
/// A newcomer's mistakes, command by command: each must end in exactly one line on standard error, starting
/// "megamoe: " and saying what was wrong, with the exit code docs/CLI.md gives for it; never a stack trace, and
/// nothing on standard output.
/// </summary>
public sealed class BadInputTests
{
    private static void ExpectOneLine(CliResult result, int exitCode, string says)
    {
        result.ExitCode.Should().Be(exitCode, result.ToString());
        string[] lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Should().ContainSingle(result.ToString());
        lines[0].Should().StartWith("megamoe: ").And.Contain(says).And.NotContain(" at MegaMoe").And.NotContain("Exception");
        result.Stdout.Should().BeEmpty();
    }

    // A checkpoint in the DeepSeek-V3 layout whose only shard is then damaged by `damage`.
    private static string DamagedCheckpoint(TempDirectory dir, Action<string> damage)
    {
        string checkpoint = dir.Sub("checkpoint");
        TestCheckpoints.WriteFp8(checkpoint);
        damage(Directory.GetFiles(checkpoint, "*.safetensors").Single());
        return checkpoint;
    }

    private static void Truncate(string file)
    {
        using FileStream stream = File.OpenWrite(file);
        stream.SetLength(stream.Length - 1000);
    }

    // Keeps the 8-byte length, replaces the JSON it announces with bytes that are not JSON.
    private static void GarbleHeader(string file)
    {
        byte[] bytes = File.ReadAllBytes(file);
        for (int i = 8; i < 40; i++)
        {
            bytes[i] = (byte)'#';
        }

        File.WriteAllBytes(file, bytes);
    }

    [Test]
    public void RunWithAMissingCheckpoint()
    {
        using var dir = new TempDirectory();
        ExpectOneLine(CliRunner.Run("run", "--checkpoint", dir.File("nope"), "--layer", "3"), ExitCodes.DataError, "no such checkpoint");
    }

    [Test]
    public void RunWithATruncatedCheckpoint()
    {
        using var dir = new TempDirectory();
        string checkpoint = DamagedCheckpoint(dir, Truncate);
        ExpectOneLine(CliRunner.Run("run", "--checkpoint", checkpoint, "--layer", "3", "--top-k", "2"), ExitCodes.DataError, "model.safetensors");
    }

    [Test]
    public void RunWithAGarbageHeader()
    {
        using var dir = new TempDirectory();
        string checkpoint = DamagedCheckpoint(dir, GarbleHeader);
        ExpectOneLine(CliRunner.Run("run", "--checkpoint", checkpoint, "--layer", "3", "--top-k", "2"), ExitCodes.DataError, "model.safetensors");
    }

    [Test]
    public void RunWithALayerTheCheckpointLacks()
    {
        using var dir = new TempDirectory();
        string checkpoint = DamagedCheckpoint(dir, _ => { });
        ExpectOneLine(CliRunner.Run("run", "--checkpoint", checkpoint, "--layer", "7", "--top-k", "2"), ExitCodes.DataError, "layer");
    }

    [Test]
    public void ConvertWithAMissingInput()
    {
        using var dir = new TempDirectory();
        ExpectOneLine(CliRunner.Run("convert", dir.File("nope"), dir.File("out")), ExitCodes.DataError, "no such checkpoint");
    }

    [Test]
    public void ConvertWithATruncatedInput()
    {
        using var dir = new TempDirectory();
        string checkpoint = DamagedCheckpoint(dir, Truncate);
        ExpectOneLine(CliRunner.Run("convert", checkpoint, dir.File("out")), ExitCodes.DataError, "model.safetensors");
        Directory.Exists(dir.File("out")).Should().BeFalse("nothing is written when the input is refused");
    }

    [Test]
    public void ConvertWithAGarbageHeader()
    {
        using var dir = new TempDirectory();
        string checkpoint = DamagedCheckpoint(dir, GarbleHeader);
        ExpectOneLine(CliRunner.Run("convert", checkpoint, dir.File("out")), ExitCodes.DataError, "model.safetensors");
    }

    [TestCase("run", "--model")]
    [TestCase("bench", "--models")]
    [TestCase("verify", "--models")]
    public void AnUnknownModel(string command, string option)
    {
        CliResult result = CliRunner.Run(command, option, "gpt-5");
        ExpectOneLine(result, ExitCodes.Usage, "'gpt-5'");
        result.Stderr.Should().ContainAll("deepseek-v3", "qwen3-235b", "qwen3-30b", "custom");
    }

    [TestCase("run", "0")]
    [TestCase("run", "-3")]
    [TestCase("run", "1000000000000")]
    [TestCase("bench", "0")]
    [TestCase("bench", "1,-3")]
    [TestCase("bench", "1000000000000")]
    [TestCase("verify", "0")]
    [TestCase("verify", "-3")]
    [TestCase("verify", "16,1000000000000")]
    public void ATokenCountThatIsNotAPositiveInt(string command, string tokens) =>
        ExpectOneLine(CliRunner.Run(command, "--tokens", tokens), ExitCodes.Usage, "--tokens takes");

    // Counts that parse but whose batch the CLI cannot hold are refused before anything is allocated.
    [TestCase("run", "--model", "deepseek-v3")]
    [TestCase("bench", "--models", "deepseek-v3")]
    [TestCase("verify", "--models", "deepseek-v3")]
    public void ATokenCountTooLargeForTheShape(string command, string option, string model) =>
        ExpectOneLine(CliRunner.Run(command, option, model, "--tokens", "2000000000", "--backend" + (command == "bench" ? "s" : string.Empty), "cpu"), ExitCodes.Usage, "at most 299593 tokens");

    [TestCase("info")]
    [TestCase("run")]
    [TestCase("bench")]
    [TestCase("verify")]
    [TestCase("convert", "in", "out")]
    public void AnUnknownFlag(params string[] command) =>
        ExpectOneLine(CliRunner.Run([.. command, "--frobnicate"]), ExitCodes.Usage, "Unrecognized command or argument '--frobnicate'");

    [Test]
    public void SeveralMistakesStillMakeOneLine() =>
        ExpectOneLine(CliRunner.Run("run", "--tokens", "0", "--runs", "x", "--frobnicate"), ExitCodes.Usage, "--runs takes");

    [Test]
    public void TooManyWorkerThreads() =>
        ExpectOneLine(CliRunner.Run("run", "--threads", "5000"), ExitCodes.Usage, "--threads takes a non-negative integer (0 to 4096)");
}
