using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Reference;
using MegaMoe.Checkpoints.Sharding;
using MegaMoe.Checkpoints.Synthetic;
using MegaMoe.Cli.Models;
using MegaMoe.Cli.Output;
using MegaMoe.Cli.Running;
using Spectre.Console;

namespace MegaMoe.Cli.Commands;

/// <summary>
/// <c>megamoe run</c>: one MoE layer, on random weights of a named shape or on a checkpoint's layer, timed and checked
/// against float64 (docs/NUMERICS.md's bound for the layer). With no arguments it is the repository's main job
/// (scripts/demo.sh): a DeepSeek-V3-shaped layer on the best backend.
/// </summary>
internal static class RunCommand
{
    // DeepSeek-V3 has 256 experts, 11 GB of FP8 weights (twice that while the layer is created); 32 of them fit a
    // workstation's memory and keep top-8 routing sparse.
    private const int ExpertsWithoutModel = 32;

    private sealed class Options
    {
        public ShapeOptions Shape { get; } = new(ExpertsWithoutModel);

        public Option<int> Tokens { get; } = CommonOptions.Tokens("Tokens in the batch", 16);

        public Option<string> Backend { get; } = CommonOptions.Backend("Backend: best (CUDA when usable here, else CPU), cpu or cuda", MegaMoe.Backend.Best);

        public Option<string> ExpertSpecialization { get; } = CommonOptions.ExpertSpecialization();

        public Option<int> Runs { get; } = CommonOptions.Positive("--runs", "Timed forward passes; the median is reported", 5);

        public Option<int> Warmup { get; } = CommonOptions.Positive("--warmup", "Untimed forward passes first", 1, allowZero: true);

        public Option<ulong> Seed { get; } = CommonOptions.Seed();

        public Option<int> Threads { get; } = CommonOptions.Threads();

        public Option<DirectoryInfo?> Checkpoint { get; } = new("--checkpoint") { Description = "Run a layer of this safetensors checkpoint (a directory, with or without an index json, or one file) instead of random weights" };

        public Option<int?> Layer { get; } = new("--layer", "-l") { Description = "The layer of --checkpoint (model.layers.L.mlp.experts.*)" };

        public Option<double?> MaxError { get; } = new("--max-error") { Description = "Largest accepted error vs float64, 1 - 2<y,ref>/(|y|^2+|ref|^2); exit code 1 above it (default: 3e-3 for H >= 2048 and I >= 1024, else 5e-3, docs/NUMERICS.md)" };

        public Option<bool> NoReference { get; } = new("--no-reference") { Description = "Skip the float64 check (it costs about as much as the CPU layer)" };
    }

    public static Command Create(CliConsole console)
    {
        var o = new Options();
        var command = new Command("run", "Run one MoE layer on random weights of a model shape, or on a checkpoint's layer; print time, throughput and error vs float64");
        o.Shape.AddTo(command);
        CommandRunner.Bind(command, console, new Option[] { o.Tokens, o.Backend, o.ExpertSpecialization, o.Runs, o.Warmup, o.Seed, o.Threads, o.Checkpoint, o.Layer, o.MaxError, o.NoReference },
            (parse, json, cancellationToken) => Run(console, parse, o, json, cancellationToken));
        return command;
    }

    private static int Run(CliConsole console, ParseResult parse, Options o, bool json, CancellationToken cancellationToken)
    {
        DirectoryInfo? checkpointDirectory = parse.GetValue(o.Checkpoint);
        int? layerIndex = parse.GetValue(o.Layer);
        if ((checkpointDirectory is null) != (layerIndex is null))
        {
            throw CliException.Usage("--checkpoint and --layer go together.");
        }

        string library = CommandRunner.RequireNativeLibrary();
        int tokens = parse.GetValue(o.Tokens);
        ulong seed = parse.GetValue(o.Seed);
        using Checkpoint? checkpoint = checkpointDirectory is null ? null : Checkpoint.Open(checkpointDirectory.FullName);
        (IExpertWeights weights, ModelShape shape) = checkpoint is null
            ? Synthetic(parse, o, seed)
            : FromCheckpoint(parse, o, checkpoint, layerIndex!.Value);
        shape.CheckTokens(tokens);
        var inputs = RoutedInputs.Random(tokens, shape.Hidden, shape.Experts, shape.TopK, seed);
        ExpertSpecialization specialization = ExpertSpecializations.Parse(parse.GetValue(o.ExpertSpecialization));

        (MoeContext context, LayerSession session) = ProgressDisplay.Run(console, json, tasks =>
        {
            IProgress<double> progress = tasks.Start($"building {shape.Name} layer ({shape.Describe()})");
            return BackendChoice.CreateLayer(CommonOptions.ToBackend(parse.GetValue(o.Backend)), parse.GetValue(o.Threads), c =>
                LayerSession.Create(c, weights, shape.TopK, tokens, shape.RoutedScalingFactor, specialization, progress, cancellationToken));
        });
        using (context)
        using (session)
        {
            (Timing timing, BFloat16[] output) = session.Time(inputs, parse.GetValue(o.Warmup), parse.GetValue(o.Runs), null, cancellationToken);
            double limit = parse.GetValue(o.MaxError) ?? Float64Reference.Bound(shape.Hidden, shape.Intermediate);
            ErrorCheck? check = parse.GetValue(o.NoReference) ? null : Check(weights, inputs, shape, output, limit);
            double flops = MoeCost.Flops(weights, inputs), bytes = MoeCost.Bytes(weights, inputs);
            var report = new RunReport(
                shape.Name,
                checkpoint?.Path,
                layerIndex,
                shape.Experts,
                shape.TopK,
                shape.Hidden,
                shape.Intermediate,
                tokens,
                inputs.DistinctExperts(),
                library,
                context.Backend.ToString().ToLowerInvariant(),
                context.DeviceInfo.Name,
                specialization.Name(),
                weights.TotalBytes(),
                session.Layer.WorkspaceBytes,
                session.CreationSeconds,
                timing.MedianSeconds * 1e6,
                timing.MinSeconds * 1e6,
                timing.MaxSeconds * 1e6,
                timing.Runs,
                tokens / timing.MedianSeconds,
                flops / timing.MedianSeconds / 1e12,
                bytes / timing.MedianSeconds / 1e9,
                check?.Error,
                check?.Limit,
                check?.Passed,
                check?.Seconds);
            if (json)
            {
                JsonOutput.Write(console, report, CliJsonContext.Default.RunReport);
            }
            else
            {
                Print(console.Out, report, BackendChoice.Describe(context));
            }

            return check is { Passed: false } ? ExitCodes.CheckFailed : ExitCodes.Success;
        }
    }

    private static (IExpertWeights, ModelShape) Synthetic(ParseResult parse, Options o, ulong seed)
    {
        ModelShape shape = o.Shape.Resolve(parse, parse.GetValue(o.Shape.Model)!);
        return (new SyntheticMoe(shape.Experts, shape.Hidden, shape.Intermediate, seed), shape);
    }

    // The checkpoint fixes E, H and I; top-k and the scaling factor are the router's, which a checkpoint of experts lacks.
    private static (IExpertWeights, ModelShape) FromCheckpoint(ParseResult parse, Options o, Checkpoint checkpoint, int layer)
    {
        if (new Option[] { o.Shape.Model, o.Shape.Experts, o.Shape.Hidden, o.Shape.Intermediate }.Any(option => ShapeOptions.Given(parse, option)))
        {
            throw CliException.Usage("with --checkpoint the shape comes from the checkpoint: --model, --experts, --hidden and --intermediate do not apply.");
        }

        var experts = CheckpointExperts.Load(checkpoint, layer);
        var shape = new ModelShape(
            $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(checkpoint.Path))}/layer{layer}",
            experts.Experts,
            parse.GetValue(o.Shape.TopK) ?? Math.Min(8, experts.Experts),
            experts.Hidden,
            experts.Intermediate,
            parse.GetValue(o.Shape.RoutedScaling) ?? 1f);
        shape.Validate();
        return (experts, shape);
    }

    private static ErrorCheck Check(IExpertWeights weights, RoutedInputs inputs, ModelShape shape, BFloat16[] output, double limit)
    {
        var stopwatch = Stopwatch.StartNew();
        (double[] expected, _) = Float64Reference.Forward(weights, inputs, shape.RoutedScalingFactor);
        double error = Float64Reference.Difference(Array.ConvertAll(output, v => (double)(float)v), expected);
        return new ErrorCheck(error, limit, error <= limit, stopwatch.Elapsed.TotalSeconds);
    }

    private static void Print(IAnsiConsole console, RunReport r, string device)
    {
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("model", $"{r.Model}: E={r.Experts} experts, top-{r.TopK}, H={r.Hidden}, I={r.Intermediate}");
        grid.AddRow("tokens", string.Create(CultureInfo.InvariantCulture, $"{r.Tokens}, routed to {r.ExpertsUsed} experts"));
        grid.AddRow("library", CommandRunner.Escape($"MegaMoe {MegaMoeLibrary.Version.ToString(3)}, {r.Library}"));
        grid.AddRow("backend", device);
        grid.AddRow("expert specialization", r.ExpertSpecialization == "none" || r.Backend != "cpu" ? r.ExpertSpecialization : $"{r.ExpertSpecialization} (the CPU backend ignores it)");
        grid.AddRow("weights", $"FP8 E4M3 with float32 block scales, {r.WeightBytes / 1e9:F2} GB");
        grid.AddRow("layer created", $"{r.CreationSeconds:F2} s including the weights' upload; workspace {r.WorkspaceBytes / 1e6:F1} MB");
        grid.AddRow("forward", $"median {r.MedianUs / 1e3:F3} ms over {r.Runs} runs (min {r.MinUs / 1e3:F3}, max {r.MaxUs / 1e3:F3})");
        grid.AddRow("throughput", $"{r.TokensPerSecond:N0} tokens/s, {r.Tflops:F3} TFLOPS, {r.Gbps:F1} GB/s");
        grid.AddRow("error vs float64", r.Error is null
            ? "not checked (--no-reference)"
            : $"{r.Error:0.00e+0} (limit {r.ErrorLimit:0e+0}): {(r.Passed == true ? "OK" : "TOO LARGE")}; reference computed in {r.ReferenceSeconds:F2} s");
        console.Write(grid);
    }

    private sealed record ErrorCheck(double Error, double Limit, bool Passed, double Seconds);
}

/// <summary>The document of <c>megamoe run --json</c>.</summary>
internal sealed record RunReport(
    string Model, string? Checkpoint, int? Layer, int Experts, int TopK, long Hidden, long Intermediate, int Tokens, int ExpertsUsed,
    string Library, string Backend, string Device, string ExpertSpecialization, long WeightBytes, long WorkspaceBytes, double CreationSeconds,
    double MedianUs, double MinUs, double MaxUs, int Runs, double TokensPerSecond, double Tflops, double Gbps, double? Error, double? ErrorLimit,
    bool? Passed, double? ReferenceSeconds);
