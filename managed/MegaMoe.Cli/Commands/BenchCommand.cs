using System.CommandLine;
using System.Globalization;
using MegaMoe.Checkpoints.Synthetic;
using MegaMoe.Cli.Bench;
using MegaMoe.Cli.Models;
using MegaMoe.Cli.Output;
using MegaMoe.Cli.Running;
using Spectre.Console;

namespace MegaMoe.Cli.Commands;

/// <summary>
/// <c>megamoe bench</c>: a sweep over models, token counts and backends with a live progress bar; prints a table and
/// optionally writes the bench/results JSON and a roofline PNG.
/// </summary>
internal static class BenchCommand
{
    private sealed class Options
    {
        public ShapeOptions Shape { get; } = new();

        public Option<string[]> Models { get; } = CommonOptions.List<string>(
            "--models", $"Model shapes to sweep: {string.Join(", ", ModelShape.Names)}", ["qwen3-30b"], CommonOptions.ParseModel, CommonOptions.ModelNames);

        public Option<int[]> Tokens { get; } = CommonOptions.TokenList("Token counts to sweep", [1, 16, 128]);

        public Option<Backend[]> Backends { get; } = CommonOptions.List("--backends", "Backends to sweep: best, cpu, cuda", [Backend.Best], CommonOptions.ParseBackend, "best, cpu or cuda");

        public Option<string> ExpertSpecialization { get; } = CommonOptions.ExpertSpecialization();

        public Option<int> Runs { get; } = CommonOptions.Positive("--runs", "Timed forward passes per point; the median is reported", 5);

        public Option<int> Warmup { get; } = CommonOptions.Positive("--warmup", "Untimed forward passes per point first", 1, allowZero: true);

        public Option<ulong> Seed { get; } = CommonOptions.Seed();

        public Option<int> Threads { get; } = CommonOptions.Threads();

        public Option<FileInfo?> Output { get; } = new("--output", "-o") { Description = "Write the results as JSON (the bench/results schema) to this file" };

        public Option<FileInfo?> Plot { get; } = new("--plot") { Description = "Write a roofline plot (TFLOPS vs arithmetic intensity) as PNG to this file" };

        public Option<string?> Commit { get; } = new("--commit") { Description = "Commit recorded in the JSON (default: the one this program was built from)" };

        public Option<double?> PeakTflops { get; } = new("--peak-tflops") { Description = "Device peak for the plot's roof (known for H100/H200)" };

        public Option<double?> PeakGbps { get; } = new("--peak-gbps") { Description = "Device memory bandwidth for the plot's roof, GB/s" };

        public Option<int> Ep { get; } = CommonOptions.Positive(
            "--ep",
            "Expert parallelism over W ranks in this process (loopback transport, one thread and context per rank, experts split evenly); --tokens counts per rank; reports dispatch, compute, combine and total per rank",
            0,
            allowZero: true);
    }

    public static Command Create(CliConsole console)
    {
        var o = new Options();
        var command = new Command("bench", "Sweep model shapes, token counts and backends; print a table, write JSON (bench/results schema) and a roofline PNG");
        command.Options.Add(o.Models);
        o.Shape.AddTo(command, withModel: false);
        CommandRunner.Bind(command, console, new Option[] { o.Tokens, o.Backends, o.ExpertSpecialization, o.Runs, o.Warmup, o.Seed, o.Threads, o.Ep, o.Output, o.Plot, o.Commit, o.PeakTflops, o.PeakGbps },
            (parse, json, cancellationToken) => Run(console, parse, o, json, cancellationToken));
        return command;
    }

    private static int Run(CliConsole console, ParseResult parse, Options o, bool json, CancellationToken cancellationToken)
    {
        ModelShape[] models = parse.GetValue(o.Models)!.Distinct().Select(m => o.Shape.Resolve(parse, m)).ToArray();
        int[] tokens = parse.GetValue(o.Tokens)!.Distinct().Order().ToArray();
        Backend[] backends = parse.GetValue(o.Backends)!.Distinct().ToArray();
        if (models.Length == 0 || tokens.Length == 0 || backends.Length == 0)
        {
            throw CliException.Usage("--models, --tokens and --backends each need at least one value.");
        }

        foreach (ModelShape model in models)
        {
            model.CheckTokens(tokens[^1]);
        }

        int ep = parse.GetValue(o.Ep);
        if (models.FirstOrDefault(m => m.Experts < ep) is { } small)
        {
            throw CliException.Usage($"--ep {ep} needs at least {ep} experts (every rank owns one or more); {small.Name} has {small.Experts}.");
        }

        CommandRunner.RequireNativeLibrary();
        int runs = parse.GetValue(o.Runs), warmup = parse.GetValue(o.Warmup), threads = parse.GetValue(o.Threads);
        ulong seed = parse.GetValue(o.Seed);
        ExpertSpecialization specialization = ExpertSpecializations.Parse(parse.GetValue(o.ExpertSpecialization));
        var results = new List<BenchResult>();
        var devices = new List<string>();
        string? cuda = null;

        void Record(MoeContext context)
        {
            DeviceInfo device = context.DeviceInfo;
            devices.Add(device.Name);
            if (context.Backend == Backend.Cuda && device.RuntimeVersion > 0)
            {
                cuda = string.Create(CultureInfo.InvariantCulture, $"{device.RuntimeVersion / 1000}.{device.RuntimeVersion % 1000 / 10}");
            }
        }

        void Add(string name, MoeContext context, int t, double seconds, double flops, double bytes, EpReport? report) =>
            results.Add(new BenchResult(
                name,
                Us(seconds),
                Math.Round(flops / seconds / 1e12, 4),
                Math.Round(bytes / seconds / 1e9, 2),
                null,
                context.Backend.ToString().ToLowerInvariant(),
                t,
                Math.Round(flops / bytes, 4),
                specialization.Name(),
                report));

        ProgressDisplay.Run(console, json, tasks =>
        {
            var bars = (from b in backends from m in models select (Backend: b, Model: m, Bar: tasks.Start($"{b.ToString().ToLowerInvariant()} {m.Name} ({m.Describe()})", 1 + (tokens.Length * (warmup + runs))))).ToList();
            foreach ((Backend backend, ModelShape model, IProgress<double> bar) in bars)
            {
                var weights = new SyntheticMoe(model.Experts, model.Hidden, model.Intermediate, seed);
                if (ep > 0)
                {
                    using EpSession session = EpSession.Create(
                        backend, ep, threads, weights, model.TopK, Math.Max(tokens[^1], 1), model.RoutedScalingFactor, specialization, bar, cancellationToken);
                    Record(session.Contexts[0]);
                    int done = 1;
                    foreach (int t in tokens)
                    {
                        RoutedInputs[] inputs = [.. Enumerable.Range(0, ep).Select(r => RoutedInputs.Random(t, model.Hidden, model.Experts, model.TopK, seed + (ulong)r))];
                        (EpRankTiming[] ranks, double median) = session.Time(inputs, warmup, runs, () => bar.Report(++done), cancellationToken);
                        var report = new EpReport(ep, [.. ranks.Select(r => new EpRankReport(r.Rank, Us(r.DispatchSeconds), Us(r.ComputeSeconds), Us(r.CombineSeconds), Us(r.TotalSeconds)))]);
                        Add($"{model.BenchName(t)}_ep{ep}", session.Contexts[0], t, median, inputs.Sum(i => MoeCost.Flops(weights, i)), MoeCost.Bytes(weights, inputs), report);
                    }

                    continue;
                }

                (MoeContext context, LayerSession single) = BackendChoice.CreateLayer(backend, threads, c =>
                    LayerSession.Create(c, weights, model.TopK, tokens[^1], model.RoutedScalingFactor, specialization, bar, cancellationToken));
                using (context)
                using (single)
                {
                    Record(context);
                    int done = 1;
                    foreach (int t in tokens)
                    {
                        var inputs = RoutedInputs.Random(t, model.Hidden, model.Experts, model.TopK, seed);
                        (Timing timing, _) = single.Time(inputs, warmup, runs, () => bar.Report(++done), cancellationToken);
                        Add(model.BenchName(t), context, t, timing.MedianSeconds, MoeCost.Flops(weights, inputs), MoeCost.Bytes(weights, inputs), null);
                    }
                }
            }

            return 0;
        });

        string card = string.Join(" + ", devices.Distinct());
        var document = new BenchDocument(
            parse.GetValue(o.Commit) ?? CliVersion.Commit,
            card,
            cuda,
            DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
            $"megamoe bench: median of {runs} forward passes after {warmup} warm-ups, forward + synchronize, inputs resident, random weights (seed {seed}); no baseline" +
            (ep > 0 ? $"; --ep {ep}: {ep} ranks in one process (loopback, a thread each), the slowest rank's pass, per-rank medians of the layer's timings" : string.Empty),
            results);
        if (parse.GetValue(o.Output) is { } output)
        {
            File.WriteAllText(output.FullName, JsonOutput.Serialize(document, CliJsonContext.Default.BenchDocument) + "\n");
        }

        if (parse.GetValue(o.Plot) is { } plot)
        {
            double? tflops = parse.GetValue(o.PeakTflops), gbps = parse.GetValue(o.PeakGbps);
            BenchPlot.Write(plot.FullName, document, tflops is { } pt && gbps is { } pg ? (pt, pg) : BenchPlot.KnownPeak(card));
        }

        if (json)
        {
            JsonOutput.Write(console, document, CliJsonContext.Default.BenchDocument);
        }
        else
        {
            Print(console.Out, document, parse.GetValue(o.Output), parse.GetValue(o.Plot));
        }

        return ExitCodes.Success;
    }

    private static double Us(double seconds) => Math.Round(seconds * 1e6, 2);

    private static void Print(IAnsiConsole console, BenchDocument document, FileInfo? output, FileInfo? plot)
    {
        string specialization = document.Results.Count > 0 ? document.Results[0].ExpertSpecialization : "none";
        var table = new Table().Border(TableBorder.Rounded).Title(
            $"{CommandRunner.Escape(document.Card)}, {document.Date}{(specialization == "none" ? string.Empty : $", expert specialization: {specialization}")}");
        table.AddColumn("name");
        table.AddColumn("backend");
        foreach (string column in new[] { "median (us)", "TFLOPS", "GB/s", "FLOP/byte" })
        {
            table.AddColumn(new TableColumn(column).RightAligned());
        }

        foreach (BenchResult r in document.Results)
        {
            table.AddRow(
                r.Name,
                r.Backend,
                r.MedianUs.ToString("F1", CultureInfo.InvariantCulture),
                r.Tflops.ToString("F3", CultureInfo.InvariantCulture),
                r.Gbps.ToString("F1", CultureInfo.InvariantCulture),
                r.ArithmeticIntensity.ToString("F1", CultureInfo.InvariantCulture));
        }

        console.Write(table);
        if (document.Results.Any(r => r.Ep is not null))
        {
            var ranks = new Table().Border(TableBorder.Rounded).Title("expert parallelism: per-rank medians (us)");
            ranks.AddColumn("name");
            foreach (string column in new[] { "rank", "dispatch", "compute", "combine", "total" })
            {
                ranks.AddColumn(new TableColumn(column).RightAligned());
            }

            foreach (BenchResult r in document.Results)
            {
                foreach (EpRankReport rank in r.Ep?.Ranks ?? [])
                {
                    ranks.AddRow(
                        r.Name,
                        rank.Rank.ToString(CultureInfo.InvariantCulture),
                        rank.DispatchUs.ToString("F1", CultureInfo.InvariantCulture),
                        rank.ComputeUs.ToString("F1", CultureInfo.InvariantCulture),
                        rank.CombineUs.ToString("F1", CultureInfo.InvariantCulture),
                        rank.TotalUs.ToString("F1", CultureInfo.InvariantCulture));
                }
            }

            console.Write(ranks);
        }

        if (output is not null)
        {
            console.WriteLine($"results: {output.FullName}");
        }

        if (plot is not null)
        {
            console.WriteLine($"plot: {plot.FullName}");
        }
    }
}
