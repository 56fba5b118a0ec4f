using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using MegaMoe.Cli.Commands;

namespace MegaMoe.Cli;

/// <summary>The <c>megamoe</c> command tree and its invocation (also called in-process by the tests).</summary>
internal static class CliApplication
{
    // A plain command named "megamoe" rather than RootCommand, which takes its name from the assembly (MegaMoe.Cli).
    public static Command Build(CliConsole console)
    {
        var root = new Command("megamoe", "FP8 Mixture-of-Experts layers on the CPU reference backend or an SM90 GPU (docs/CLI.md)")
        {
            new HelpOption(),
            new VersionOption(),
            CommonOptions.Json,
        };
        root.Subcommands.Add(InfoCommand.Create(console));
        root.Subcommands.Add(RunCommand.Create(console));
        root.Subcommands.Add(BenchCommand.Create(console));
        root.Subcommands.Add(VerifyCommand.Create(console));
        root.Subcommands.Add(ConvertCommand.Create(console));
        return root;
    }

    /// <summary>Parses and runs <paramref name="args"/>; returns the exit code (<see cref="ExitCodes"/>).</summary>
    public static int Run(string[] args, CliConsole console)
    {
        Command root = Build(console);
        ParseResult parse = root.Parse(args);
        var configuration = new InvocationConfiguration { Output = console.Output, Error = console.Error };

        // A bare 'megamoe' shows the commands, like --help, but is still a usage error.
        if (parse.CommandResult.Command == root && !IsBuiltIn(root, parse) && args.All(a => a == CommonOptions.Json.Name))
        {
            root.Parse(["--help"]).Invoke(configuration);
            return ExitCodes.Usage;
        }

        // Usage errors exit 2 (as most tools do) rather than the library's 1, which this CLI keeps for failed checks.
        if (parse.Errors.Count > 0 && !IsBuiltIn(root, parse))
        {
            ReportErrors(console, parse, parse.CommandResult.Command == root ? "megamoe" : $"megamoe {parse.CommandResult.Command.Name}");
            return ExitCodes.Usage;
        }

        return parse.Invoke(configuration);
    }

    // --help and --version answer by themselves, whatever else is on the line.
    private static bool IsBuiltIn(Command root, ParseResult parse) =>
        parse.Action is HelpAction
        || root.Options.OfType<VersionOption>().Any(v => parse.GetResult(v) is not null);

    // One line, as every other failure: the parser's messages joined (one spans lines: "... Must be one of:" and a
    // line per accepted value, which become a comma-separated list), then where to look.
    private static void ReportErrors(CliConsole console, ParseResult parse, string command)
    {
        IEnumerable<string> messages = parse.Errors.Select(error =>
        {
            string[] lines = error.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            return lines.Length == 1 ? lines[0] : $"{lines[0]} {string.Join(", ", lines[1..])}.";
        });
        console.Error.WriteLine($"megamoe: {string.Join(" ", messages)} Run '{command} --help' for usage.");
    }
}
