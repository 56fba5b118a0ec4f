using System.CommandLine;
using System.Globalization;
using MegaMoe.Cli.Output;
using Spectre.Console;

namespace MegaMoe.Cli.Commands;

/// <summary><c>megamoe info</c>: versions, build, and what each backend runs on here (or why it cannot).</summary>
internal static class InfoCommand
{
    public static Command Create(CliConsole console)
    {
        var command = new Command("info", "Show library and native versions, the native build, and the backends and devices available here");
        command.SetAction(parse => CommandRunner.Execute(console, parse.GetValue(CommonOptions.Json), () => Run(console, parse.GetValue(CommonOptions.Json))));
        return command;
    }

    private static int Run(CliConsole console, bool json)
    {
        string path = CommandRunner.RequireNativeLibrary();
        var report = new InfoReport(
            CliVersion.Informational,
            CliVersion.Managed,
            MegaMoeLibrary.Version.ToString(3),
            path,
            ParseBuildInfo(MegaMoeLibrary.BuildInfo),
            [Probe(Backend.Cpu), Probe(Backend.Cuda)]);
        if (json)
        {
            JsonOutput.Write(console, report, CliJsonContext.Default.InfoReport);
        }
        else
        {
            Print(console.Out, report);
        }

        return ExitCodes.Success;
    }

    // "key=value;key=value" from megamoe_build_info().
    private static Dictionary<string, string> ParseBuildInfo(string text) =>
        text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(pair => pair.Split('=', 2))
            .GroupBy(kv => kv[0], StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Last().Length > 1 ? g.Last()[1] : string.Empty, StringComparer.Ordinal);

    // Creating a context is what the native library explains a failure of (built without CUDA, no driver, no SM90 GPU).
    private static BackendReport Probe(Backend backend)
    {
        try
        {
            using MoeContext context = MoeContext.Create(backend);
            DeviceInfo d = context.DeviceInfo;
            return new BackendReport(Name(backend), true, null, new DeviceReport(
                d.Name,
                d.DeviceId,
                backend == Backend.Cuda ? d.ComputeCapability.ToString(2) : null,
                d.MultiprocessorCount,
                d.TotalMemoryBytes,
                d.L2CacheBytes,
                CudaVersion(d.DriverVersion),
                CudaVersion(d.RuntimeVersion)));
        }
        catch (MegaMoeBackendUnavailableException e)
        {
            return new BackendReport(Name(backend), false, e.NativeMessage, null);
        }
    }

    private static string Name(Backend backend) => backend.ToString().ToLowerInvariant();

    // CUDA encodes versions as 1000 * major + 10 * minor (13000 = 13.0).
    private static string? CudaVersion(int encoded) =>
        encoded <= 0 ? null : string.Create(CultureInfo.InvariantCulture, $"{encoded / 1000}.{encoded % 1000 / 10}");

    private static void Print(IAnsiConsole console, InfoReport report)
    {
        console.MarkupLine($"[bold]MegaMoe[/] {CommandRunner.Escape(report.CliVersion)}");
        var versions = new Grid().AddColumn().AddColumn();
        versions.AddRow("managed library", report.ManagedVersion);
        versions.AddRow("native library", $"{report.NativeVersion}  {report.LibraryPath}");
        foreach ((string key, string value) in report.BuildInfo)
        {
            versions.AddRow($"build {key}", value);
        }

        console.Write(versions);
        console.WriteLine();

        var table = new Table().Border(TableBorder.Rounded).Title("backends");
        foreach (string column in new[] { "backend", "status", "device", "SMs / threads", "memory", "CUDA driver", "CUDA runtime" })
        {
            table.AddColumn(column);
        }

        foreach (BackendReport b in report.Backends)
        {
            DeviceReport? d = b.Device;
            string device = d is null ? "-" : d.ComputeCapability is null ? d.Name : $"{d.Name} (SM {d.ComputeCapability})";
            table.AddRow(
                new Text(b.Name),
                b.Available ? new Markup("[green]available[/]") : new Markup("[red]unavailable[/]"),
                new Text(device),
                new Text(d is null ? "-" : d.MultiprocessorCount.ToString(CultureInfo.InvariantCulture)),
                new Text(d is null ? "-" : $"{d.TotalMemoryBytes / (double)(1L << 30):F1} GiB"),
                new Text(d?.CudaDriver ?? "-"),
                new Text(d?.CudaRuntime ?? "-"));
        }

        console.Write(table);
        foreach (BackendReport b in report.Backends.Where(b => !b.Available))
        {
            console.MarkupLine($"[yellow]{b.Name} backend unavailable:[/] {CommandRunner.Escape(b.Reason ?? "no reason given")}");
        }

        if (report.Backends.Any(b => b.Name == "cuda" && !b.Available))
        {
            console.WriteLine("Everything still runs on the CPU backend (--backend cpu, or best). The GPU backend needs a CUDA build of libmegamoe.so (cmake --preset cuda), the NVIDIA driver (libcuda.so.1) and an SM90 GPU (H100/H200).");
        }
    }
}

/// <summary>The document of <c>megamoe info --json</c>.</summary>
internal sealed record InfoReport(
    string CliVersion, string ManagedVersion, string NativeVersion, string LibraryPath, Dictionary<string, string> BuildInfo,
    IReadOnlyList<BackendReport> Backends);

/// <summary>One backend: usable here, or why not.</summary>
internal sealed record BackendReport(string Name, bool Available, string? Reason, DeviceReport? Device);

/// <summary>The device a backend runs on.</summary>
internal sealed record DeviceReport(
    string Name, int DeviceId, string? ComputeCapability, int MultiprocessorCount, long TotalMemoryBytes, long L2CacheBytes,
    string? CudaDriver, string? CudaRuntime);
