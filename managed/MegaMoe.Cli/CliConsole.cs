using Spectre.Console;

namespace MegaMoe.Cli;

/// <summary>
/// Where a command writes: results to standard output (a Spectre console for people, or raw JSON with --json), and
/// errors and progress to standard error, so that <c>megamoe bench --json &gt; out.json</c> captures only the result.
/// Tests build one over string writers.
/// </summary>
internal sealed class CliConsole
{
    public CliConsole(TextWriter output, TextWriter error, bool interactive)
    {
        Output = output;
        Error = error;
        Interactive = interactive;
        Out = Create(output, interactive);
        Status = Create(error, interactive);
    }

    /// <summary>Standard output, for JSON.</summary>
    public TextWriter Output { get; }

    /// <summary>Standard error, for messages.</summary>
    public TextWriter Error { get; }

    /// <summary>Whether a person is watching (live progress bars, colours).</summary>
    public bool Interactive { get; }

    /// <summary>Tables and text for people, on standard output.</summary>
    public IAnsiConsole Out { get; }

    /// <summary>Progress bars, on standard error.</summary>
    public IAnsiConsole Status { get; }

    /// <summary>The process's own console; interactive when standard error is a terminal.</summary>
    public static CliConsole FromProcess() =>
        new(Console.Out, Console.Error, !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("NO_COLOR") is null);

    // Redirected output has no width; 80 columns would wrap the tables, so logs get a wide fixed one.
    private static IAnsiConsole Create(TextWriter writer, bool interactive)
    {
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Detect : InteractionSupport.No,
        });
        if (!interactive)
        {
            console.Profile.Width = 200;
        }

        return console;
    }
}
