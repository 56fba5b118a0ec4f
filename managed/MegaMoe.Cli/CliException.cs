namespace MegaMoe.Cli;

/// <summary>A failure the CLI explains itself, with the exit code it ends with.</summary>
internal sealed class CliException : Exception
{
    public CliException()
    {
    }

    public CliException(string message)
        : this(ExitCodes.Error, message)
    {
    }

    public CliException(string message, Exception innerException)
        : base(message, innerException)
    {
        ExitCode = ExitCodes.Error;
    }

    public CliException(int exitCode, string message)
        : base(message)
    {
        ExitCode = exitCode;
    }

    /// <summary>The process exit status (<see cref="ExitCodes"/>).</summary>
    public int ExitCode { get; }

    /// <summary>A command-line mistake the parser cannot see (e.g. a shape that does not fit together).</summary>
    public static CliException Usage(string message) => new(ExitCodes.Usage, message);
}
