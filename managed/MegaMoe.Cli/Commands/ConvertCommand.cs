using System.CommandLine;
using MegaMoe.Checkpoints.Conversion;
using MegaMoe.Cli.Output;
using MegaMoe.Cli.Running;
using Spectre.Console;

namespace MegaMoe.Cli.Commands;

/// <summary>
/// <c>megamoe convert</c>: BF16 expert weights in safetensors to FP8 with 128x128 block scales (DeepSeek-V3 layout),
/// optionally gate/up interleaved; streams tensor by tensor with a progress bar.
/// </summary>
internal static class ConvertCommand
{
    private sealed class Options
    {
        public Argument<string> Input { get; } = new("input") { Description = "Checkpoint directory (with or without an index json) or one .safetensors file" };

        public Argument<DirectoryInfo> Output { get; } = new("output") { Description = "Directory for the converted shards (created if needed; must not be the input's)" };

        public Option<bool> Interleave { get; } = new("--interleave") { Description = "Fuse gate and up into gate_up_proj with rows interleaved by 8 (the layout the fused GPU layer reads)" };

        public Option<bool> Ue8m0 { get; } = new("--ue8m0") { Description = "Round every scale up to a power of two (UE8M0), as DeepGEMM's UE8M0 layouts expect" };

        public Option<bool> Force { get; } = new("--force", "-f") { Description = "Replace output files that exist" };

        public Option<string> Backend { get; } = CommonOptions.Backend("Backend that quantizes: best, cpu or cuda (results are bit-identical)", MegaMoe.Backend.Best);

        public Option<int> Threads { get; } = CommonOptions.Threads();
    }

    public static Command Create(CliConsole console)
    {
        var o = new Options();
        var command = new Command("convert", "Convert BF16 expert weights in safetensors to FP8 block-scaled safetensors (optionally interleaved), streaming");
        command.Arguments.Add(o.Input);
        command.Arguments.Add(o.Output);
        CommandRunner.Bind(command, console, new Option[] { o.Interleave, o.Ue8m0, o.Force, o.Backend, o.Threads },
            (parse, json, cancellationToken) => Run(console, parse, o, json, cancellationToken));
        return command;
    }

    private static int Run(CliConsole console, ParseResult parse, Options o, bool json, CancellationToken cancellationToken)
    {
        CommandRunner.RequireNativeLibrary();
        string input = parse.GetValue(o.Input)!;
        DirectoryInfo output = parse.GetValue(o.Output)!;
        var options = new ConversionOptions
        {
            Interleave = parse.GetValue(o.Interleave),
            Quantization = parse.GetValue(o.Ue8m0) ? QuantizationOptions.Ue8m0Scales : QuantizationOptions.None,
            Overwrite = parse.GetValue(o.Force),
        };
        using MoeContext context = BackendChoice.Open(CommonOptions.ToBackend(parse.GetValue(o.Backend)), parse.GetValue(o.Threads));
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        ConversionResult result = ProgressDisplay.Run(console, json, tasks =>
        {
            IProgress<double> bar = tasks.Start("converting", 1);
            var progress = new InlineProgress(p => bar.Report(p.BytesTotal == 0 ? 1 : (double)p.BytesDone / p.BytesTotal));
            return CheckpointConverter.Convert(input, output.FullName, context, options, progress, cancellationToken);
        });

        var report = new ConvertReport(
            Path.GetFullPath(input), output.FullName, context.Backend.ToString().ToLowerInvariant(), options.Interleave,
            options.Quantization == QuantizationOptions.Ue8m0Scales, result.TensorsQuantized, result.TensorsFused, result.TensorsCopied,
            result.InputBytes, result.OutputBytes, stopwatch.Elapsed.TotalSeconds, result.Files);
        if (json)
        {
            JsonOutput.Write(console, report, CliJsonContext.Default.ConvertReport);
        }
        else
        {
            Print(console.Out, report);
        }

        return ExitCodes.Success;
    }

    private static void Print(IAnsiConsole console, ConvertReport r)
    {
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("input", CommandRunner.Escape(r.Input));
        grid.AddRow("output", CommandRunner.Escape(r.Output));
        grid.AddRow("quantized", $"{r.TensorsQuantized} expert matrices to FP8 E4M3 + F32 128x128 scales{(r.Ue8m0 ? " (UE8M0)" : string.Empty)}{(r.Interleaved ? ", gate/up fused and interleaved" : string.Empty)}");
        if (r.TensorsFused > 0)
        {
            grid.AddRow("fused", $"{r.TensorsFused} FP8 gate/up pairs interleaved as they were");
        }

        grid.AddRow("copied", $"{r.TensorsCopied} other tensors unchanged");
        grid.AddRow("size", $"{r.InputBytes / 1e6:F1} MB -> {r.OutputBytes / 1e6:F1} MB in {r.Seconds:F1} s on {r.Backend}");
        grid.AddRow("files", CommandRunner.Escape(string.Join(Environment.NewLine, r.Files.Select(Path.GetFileName))));
        console.Write(grid);
    }

    // Progress<T> would post reports to the thread pool; the bar should move while the conversion runs on this thread.
    private sealed class InlineProgress(Action<ConversionProgress> report) : IProgress<ConversionProgress>
    {
        public void Report(ConversionProgress value) => report(value);
    }
}

/// <summary>The document of <c>megamoe convert --json</c>.</summary>
internal sealed record ConvertReport(
    string Input, string Output, string Backend, bool Interleaved, bool Ue8m0, int TensorsQuantized, int TensorsFused, int TensorsCopied,
    long InputBytes, long OutputBytes, double Seconds, IReadOnlyList<string> Files);
