using System.Text.Json;

namespace MegaMoe.Cli.Tests.Support;

/// <summary>What one in-process run of the CLI printed and returned.</summary>
internal sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>Standard output as JSON (for --json runs).</summary>
    public JsonElement Json()
    {
        using JsonDocument document = JsonDocument.Parse(Stdout);
        return document.RootElement.Clone();
    }

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

/// <summary>Runs the CLI in this process, as the executable would, with output captured (non-interactive: no bars, no colour).</summary>
internal static class CliRunner
{
    /// <summary>The tiny layer every test uses, so the CPU backend answers in milliseconds.</summary>
    public static readonly string[] TinyShape = ["--model", "custom", "--experts", "4", "--top-k", "2", "--hidden", "256", "--intermediate", "128"];

    public static CliResult Run(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int code = CliApplication.Run(args, new CliConsole(output, error, interactive: false));
        return new CliResult(code, output.ToString(), error.ToString());
    }

    public static bool CudaAvailable => MoeContext.IsBackendAvailable(Backend.Cuda, 0, out _);
}
