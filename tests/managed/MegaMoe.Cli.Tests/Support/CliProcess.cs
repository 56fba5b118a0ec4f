using System.Diagnostics;

namespace MegaMoe.Cli.Tests.Support;

/// <summary>Runs a megamoe executable as a child process: real exit codes, real standard streams.</summary>
internal static class CliProcess
{
    public static CliResult Run(string executable, params string[] args)
    {
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // The executable must find its own libmegamoe.so (beside it), not one this test process was pointed at.
        start.Environment.Remove("MEGAMOE_NATIVE_PATH");
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{executable} {string.Join(' ', args)} did not finish in 2 minutes.");
        }

        return new CliResult(process.ExitCode, stdout.Result, stderr.Result);
    }
}
