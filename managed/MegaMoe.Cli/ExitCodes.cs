namespace MegaMoe.Cli;

/// <summary>
/// The exit status of every command. 0 and 1 mean what they usually mean (it worked; the thing checked failed), 2 is a
/// bad command line as in most Unix tools, and the others tell a script why nothing could be measured.
/// </summary>
internal static class ExitCodes
{
    /// <summary>Done; every check passed.</summary>
    public const int Success = 0;

    /// <summary>The command ran but a check failed (error above the limit, GPU/CPU mismatch).</summary>
    public const int CheckFailed = 1;

    /// <summary>The command line is wrong (unknown option, missing value, inconsistent shape).</summary>
    public const int Usage = 2;

    /// <summary>
    /// The backend asked for cannot run here (no GPU, no CUDA build, no driver), or rejects what was asked of it as
    /// unsupported (a shape or option outside its limits).
    /// </summary>
    public const int BackendUnavailable = 3;

    /// <summary>An input file is missing or malformed (safetensors, index, checkpoint layout).</summary>
    public const int DataError = 4;

    /// <summary>libmegamoe.so could not be loaded or does not match this program.</summary>
    public const int NativeLibrary = 5;

    /// <summary>Any other failure (out of memory, a device error, an I/O error).</summary>
    public const int Error = 6;

    /// <summary>Interrupted (Ctrl+C), as shells report SIGINT: 128 + 2.</summary>
    public const int Cancelled = 130;
}
