namespace MegaMoe.Cli.Output;

/// <summary>What --json prints on standard output when a command fails (the message also goes to standard error).</summary>
/// <param name="Error">The message.</param>
/// <param name="Kind">A stable word for scripts: usage, backend-unavailable, data, native-library, error, cancelled.</param>
/// <param name="ExitCode">The process exit status.</param>
internal sealed record ErrorReport(string Error, string Kind, int ExitCode);
