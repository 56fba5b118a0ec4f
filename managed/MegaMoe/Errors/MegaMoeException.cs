namespace MegaMoe;

/// <summary>
/// A native MegaMoe call failed. The subclass tells the <see cref="Status"/>; <see cref="NativeMessage"/> is the
/// library's own text, which names the function, the argument and what was expected versus what was given.
/// </summary>
public class MegaMoeException : Exception
{
    /// <summary>Creates an exception for an unclassified failure (<see cref="MegaMoeStatus.Internal"/>).</summary>
    public MegaMoeException()
        : this(MegaMoeStatus.Internal, string.Empty, null)
    {
    }

    /// <summary>Creates an exception for an unclassified failure (<see cref="MegaMoeStatus.Internal"/>).</summary>
    /// <param name="message">The native message.</param>
    public MegaMoeException(string message)
        : this(MegaMoeStatus.Internal, message, null)
    {
    }

    /// <summary>Creates an exception for an unclassified failure (<see cref="MegaMoeStatus.Internal"/>).</summary>
    /// <param name="message">The native message.</param>
    /// <param name="innerException">The cause.</param>
    public MegaMoeException(string message, Exception? innerException)
        : this(MegaMoeStatus.Internal, message, innerException)
    {
    }

    /// <summary>Creates an exception for a status.</summary>
    /// <param name="status">The status the native call returned.</param>
    /// <param name="nativeMessage">The native message.</param>
    /// <param name="innerException">The cause, if any.</param>
    protected MegaMoeException(MegaMoeStatus status, string nativeMessage, Exception? innerException)
        : base(FormatMessage(status, nativeMessage ?? string.Empty), innerException)
    {
        Status = status;
        NativeMessage = nativeMessage ?? string.Empty;
    }

    /// <summary>The status the native call returned.</summary>
    public MegaMoeStatus Status { get; }

    /// <summary><c>megamoe_last_error_message()</c> read right after the failing call ("" if there was none).</summary>
    public string NativeMessage { get; }

    /// <summary>The exception type for <paramref name="status"/>; statuses newer than this binding get the base type.</summary>
    internal static MegaMoeException Create(MegaMoeStatus status, string nativeMessage) => status switch
    {
        MegaMoeStatus.InvalidArgument => new MegaMoeInvalidArgumentException(nativeMessage),
        MegaMoeStatus.Unsupported => new MegaMoeUnsupportedException(nativeMessage),
        MegaMoeStatus.BackendUnavailable => new MegaMoeBackendUnavailableException(nativeMessage),
        MegaMoeStatus.OutOfMemory => new MegaMoeOutOfMemoryException(nativeMessage),
        MegaMoeStatus.Device => new MegaMoeDeviceException(nativeMessage),
        MegaMoeStatus.Cancelled => new MegaMoeCancelledException(nativeMessage),
        MegaMoeStatus.Internal => new MegaMoeInternalException(nativeMessage),
        _ => new MegaMoeException(status, nativeMessage, null),
    };

    private static string FormatMessage(MegaMoeStatus status, string nativeMessage) =>
        nativeMessage.Length == 0 ? $"MegaMoe failed with status {status}." : nativeMessage;
}
