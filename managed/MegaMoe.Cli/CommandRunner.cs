using System.CommandLine;
using MegaMoe.Checkpoints.Safetensors;
using MegaMoe.Cli.Commands;
using MegaMoe.Cli.Output;
using Spectre.Console;

namespace MegaMoe.Cli;

/// <summary>
/// Runs a command's body and turns every failure into a message on standard error (and a JSON error with --json) and
/// the matching exit code, so no command has to, and no stack trace reaches a user for an expected failure.
/// </summary>
internal static class CommandRunner
{
    public static int Execute(CliConsole console, bool json, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e)
        {
            (string Message, string Kind, int Code) failure = Classify(e);
            console.Error.WriteLine($"megamoe: {failure.Message}");
            console.Error.Flush();
            if (json)
            {
                JsonOutput.Write(console, new ErrorReport(failure.Message, failure.Kind, failure.Code), CliJsonContext.Default.ErrorReport);
            }

            return failure.Code;
        }
    }

    /// <summary>
    /// Adds <paramref name="options"/> to <paramref name="command"/> and makes <paramref name="body"/> its action, run
    /// through <see cref="Execute"/> with the <c>--json</c> flag it was given.
    /// </summary>
    public static void Bind(Command command, CliConsole console, Option[] options, Func<ParseResult, bool, CancellationToken, int> body)
    {
        foreach (Option option in options)
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, cancellationToken) =>
        {
            bool json = parse.GetValue(CommonOptions.Json);
            return Task.FromResult(Execute(console, json, () => body(parse, json, cancellationToken)));
        });
    }

    /// <summary>Loads and checks the native library first, so that a missing or mismatched one is reported as such.</summary>
    public static string RequireNativeLibrary()
    {
        try
        {
            return MegaMoeLibrary.Path;
        }
        catch (Exception e) when (e is DllNotFoundException or InvalidOperationException or BadImageFormatException)
        {
            throw new CliException(ExitCodes.NativeLibrary, $"cannot use the MegaMoe native library: {e.Message}");
        }
    }

    // Unexpected exceptions are bugs: the whole exception (stack trace included) goes into the message to report.
    private static (string Message, string Kind, int Code) Classify(Exception e) => e switch
    {
        CliException c => (c.Message, Kind(c.ExitCode), c.ExitCode),
        OperationCanceledException => ("cancelled.", "cancelled", ExitCodes.Cancelled),
        MegaMoeBackendUnavailableException b => ($"backend unavailable: {b.NativeMessage}", "backend-unavailable", ExitCodes.BackendUnavailable),
        MegaMoeUnsupportedException u => ($"not supported on this backend: {u.NativeMessage}", "backend-unavailable", ExitCodes.BackendUnavailable),
        MegaMoeException m => ($"MegaMoe failed ({m.Status}): {m.NativeMessage}", "error", ExitCodes.Error),
        SafetensorsFormatException or InvalidDataException => (e.Message, "data", ExitCodes.DataError),
        FileNotFoundException or DirectoryNotFoundException => (e.Message, "data", ExitCodes.DataError),
        DllNotFoundException => ($"cannot load the MegaMoe native library: {e.Message}", "native-library", ExitCodes.NativeLibrary),
        OutOfMemoryException => ($"out of host memory: {e.Message}", "error", ExitCodes.Error),
        IOException or UnauthorizedAccessException => (e.Message, "error", ExitCodes.Error),
        _ => ($"unexpected error (please report it): {e}", "error", ExitCodes.Error),
    };

    private static string Kind(int code) => code switch
    {
        ExitCodes.Usage => "usage",
        ExitCodes.BackendUnavailable => "backend-unavailable",
        ExitCodes.DataError => "data",
        ExitCodes.NativeLibrary => "native-library",
        ExitCodes.Cancelled => "cancelled",
        ExitCodes.CheckFailed => "check-failed",
        _ => "error",
    };

    /// <summary>Escapes text for Spectre markup.</summary>
    public static string Escape(string text) => Markup.Escape(text);
}
