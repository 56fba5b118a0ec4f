using System.CommandLine;
using System.Globalization;
using MegaMoe.Cli.Models;
using MegaMoe.Cli.Output;
using MegaMoe.Cli.Running;
using MegaMoe.Cli.Verify;
using Spectre.Console;

namespace MegaMoe.Cli.Commands;

/// <summary>
/// <c>megamoe verify</c>: GPU vs CPU parity of quantization, the GEMMs and the layer on the shapes the user picks, with a
/// pass/fail summary. Without a usable GPU it stops at once with exit code 3 and the library's reason.
/// </summary>
internal static class VerifyCommand
{
    private sealed class Options
    {
        public ShapeOptions Shape { get; } = new();

        public Option<string[]> Models { get; } = CommonOptions.List<string>(
            "--models", $"Model shapes to check (alternative to --model): {string.Join(", ", ModelShape.Names)}", [], CommonOptions.ParseModel, CommonOptions.ModelNames);

        public Option<int[]> Tokens { get; } = CommonOptions.TokenList("Token counts to check", [1, 16]);

        public Option<string> Backend { get; } = CommonOptions.Backend(
            "Backend compared with the CPU reference: cuda, or cpu to check the harness itself (always agrees)", MegaMoe.Backend.Cuda);

        public Option<string> ExpertSpecialization { get; } = CommonOptions.ExpertSpecialization();

        public Option<ulong> Seed { get; } = CommonOptions.Seed();

        public Option<int> Threads { get; } = CommonOptions.Threads();
    }

    public static Command Create(CliConsole console)
    {
        var o = new Options();
        var command = new Command("verify", "Check GPU vs CPU parity (quantization, GEMMs, MoE layer) on chosen shapes; needs a GPU (exit code 3 without one)");
        o.Shape.AddTo(command);
        CommandRunner.Bind(command, console, new Option[] { o.Models, o.Tokens, o.Backend, o.ExpertSpecialization, o.Seed, o.Threads },
            (parse, json, cancellationToken) => Run(console, parse, o, json, cancellationToken));
        return command;
    }

    private static int Run(CliConsole console, ParseResult parse, Options o, bool json, CancellationToken cancellationToken)
    {
        Backend backend = CommonOptions.ToBackend(parse.GetValue(o.Backend));
        if (backend == MegaMoe.Backend.Best)
        {
            throw CliException.Usage("verify compares one backend with the CPU: pass --backend cuda (or cpu to check the harness).");
        }

        string[] names = parse.GetValue(o.Models) is { Length: > 0 } list ? list : [parse.GetValue(o.Shape.Model)!];
        ModelShape[] shapes = names.Distinct().Select(m => o.Shape.Resolve(parse, m)).ToArray();
        int[] tokens = parse.GetValue(o.Tokens)!.Distinct().Order().ToArray();
        if (tokens.Length == 0)
        {
            throw CliException.Usage("--tokens needs at least one value.");
        }

        foreach (ModelShape shape in shapes)
        {
            shape.CheckTokens(tokens[^1]);
        }

        ExpertSpecialization specialization = ExpertSpecializations.Parse(parse.GetValue(o.ExpertSpecialization));
        CommandRunner.RequireNativeLibrary();
        using MoeContext target = OpenTarget(backend, parse.GetValue(o.Threads));
        using MoeContext cpu = BackendChoice.Open(MegaMoe.Backend.Cpu, parse.GetValue(o.Threads));
        var checks = ProgressDisplay.Run(console, json, tasks =>
        {
            IProgress<double> bar = tasks.Start($"{backend.ToString().ToLowerInvariant()} vs cpu", shapes.Length * tokens.Length);
            var results = new List<ParityCheck>();
            foreach (ModelShape shape in shapes)
            {
                foreach (int t in tokens)
                {
                    results.AddRange(ParityChecks.Run(target, cpu, new ParityProblem(shape, t, parse.GetValue(o.Seed)), specialization, cancellationToken));
                    bar.Report(results.Count / 4.0);
                }
            }

            return results;
        });

        var report = new VerifyReport(
            backend.ToString().ToLowerInvariant(),
            target.DeviceInfo.Name,
            specialization.Name(),
            checks.Count(c => c.Status == ParityCheck.Pass),
            checks.Count(c => c.Status == ParityCheck.Fail),
            checks);
        if (json)
        {
            JsonOutput.Write(console, report, CliJsonContext.Default.VerifyReport);
        }
        else
        {
            Print(console.Out, report);
        }

        return report.Failed > 0 ? ExitCodes.CheckFailed : ExitCodes.Success;
    }

    // The reason the library gives for an unusable GPU is the whole point of the message.
    private static MoeContext OpenTarget(Backend backend, int threads)
    {
        try
        {
            return BackendChoice.Open(backend, threads);
        }
        catch (MegaMoeBackendUnavailableException e)
        {
            throw new CliException(
                ExitCodes.BackendUnavailable,
                $"verify compares the {backend.ToString().ToUpperInvariant()} backend with the CPU backend, but it is unavailable here: {e.NativeMessage}");
        }
    }

    private static void Print(IAnsiConsole console, VerifyReport report)
    {
        string specialization = report.ExpertSpecialization == "none" ? string.Empty : $", expert specialization: {report.ExpertSpecialization}";
        var table = new Table().Border(TableBorder.Rounded).Title($"{report.Backend} ({CommandRunner.Escape(report.Device)}) vs cpu{specialization}");
        foreach (string column in new[] { "model", "tokens", "check", "result", "metric", "limit" })
        {
            table.AddColumn(column);
        }

        foreach (ParityCheck c in report.Checks)
        {
            string result = c switch
            {
                { Status: ParityCheck.Pass } => "[green]pass[/]",
                { Metric: null } => $"[red]FAIL[/]: {CommandRunner.Escape(c.Detail)}",
                _ => "[red]FAIL[/]",
            };
            table.AddRow(
                new Text(c.Model),
                new Text(c.Tokens.ToString(CultureInfo.InvariantCulture)),
                new Text(c.Check),
                new Markup(result),
                new Text(c.Metric?.ToString("0.##e+0", CultureInfo.InvariantCulture) ?? "-"),
                new Text(c.Limit?.ToString("0.##e+0", CultureInfo.InvariantCulture) ?? "-"));
        }

        console.Write(table);
        string verdict = report.Failed > 0 ? "[red]FAILED[/]" : "[green]PASSED[/]";
        console.MarkupLine($"verify {verdict} - {report.Passed} of {report.Checks.Count} checks passed ({report.Failed} failed)");
    }
}
