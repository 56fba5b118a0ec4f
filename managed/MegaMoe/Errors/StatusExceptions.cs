namespace MegaMoe;

// One exception type per megamoe_status_t failure, so callers can catch exactly what they can handle.

/// <summary>A handle, descriptor or value was rejected (<see cref="MegaMoeStatus.InvalidArgument"/>): dtype, rank, shape, stride, alignment or range.</summary>
public sealed class MegaMoeInvalidArgumentException : MegaMoeException
{
    /// <summary>Creates the exception without a native message.</summary>
    public MegaMoeInvalidArgumentException()
        : this(string.Empty)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    public MegaMoeInvalidArgumentException(string message)
        : this(message, null)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    /// <param name="innerException">The cause.</param>
    public MegaMoeInvalidArgumentException(string message, Exception? innerException)
        : base(MegaMoeStatus.InvalidArgument, message, innerException)
    {
    }
}

/// <summary>The request is well formed but this backend or build does not support it (<see cref="MegaMoeStatus.Unsupported"/>).</summary>
public sealed class MegaMoeUnsupportedException : MegaMoeException
{
    /// <summary>Creates the exception without a native message.</summary>
    public MegaMoeUnsupportedException()
        : this(string.Empty)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    public MegaMoeUnsupportedException(string message)
        : this(message, null)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    /// <param name="innerException">The cause.</param>
    public MegaMoeUnsupportedException(string message, Exception? innerException)
        : base(MegaMoeStatus.Unsupported, message, innerException)
    {
    }
}

/// <summary>The backend asked for is not usable here (<see cref="MegaMoeStatus.BackendUnavailable"/>): built without CUDA, no driver, no SM90 device.</summary>
public sealed class MegaMoeBackendUnavailableException : MegaMoeException
{
    /// <summary>Creates the exception without a native message.</summary>
    public MegaMoeBackendUnavailableException()
        : this(string.Empty)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    public MegaMoeBackendUnavailableException(string message)
        : this(message, null)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    /// <param name="innerException">The cause.</param>
    public MegaMoeBackendUnavailableException(string message, Exception? innerException)
        : base(MegaMoeStatus.BackendUnavailable, message, innerException)
    {
    }
}

/// <summary>Host or device memory ran out (<see cref="MegaMoeStatus.OutOfMemory"/>).</summary>
public sealed class MegaMoeOutOfMemoryException : MegaMoeException
{
    /// <summary>Creates the exception without a native message.</summary>
    public MegaMoeOutOfMemoryException()
        : this(string.Empty)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    public MegaMoeOutOfMemoryException(string message)
        : this(message, null)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    /// <param name="innerException">The cause.</param>
    public MegaMoeOutOfMemoryException(string message, Exception? innerException)
        : base(MegaMoeStatus.OutOfMemory, message, innerException)
    {
    }
}

/// <summary>The CUDA runtime or driver reported an error (<see cref="MegaMoeStatus.Device"/>); the message carries its name.</summary>
public sealed class MegaMoeDeviceException : MegaMoeException
{
    /// <summary>Creates the exception without a native message.</summary>
    public MegaMoeDeviceException()
        : this(string.Empty)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    public MegaMoeDeviceException(string message)
        : this(message, null)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    /// <param name="innerException">The cause.</param>
    public MegaMoeDeviceException(string message, Exception? innerException)
        : base(MegaMoeStatus.Device, message, innerException)
    {
    }
}

/// <summary>A progress callback asked to stop and nothing was created (<see cref="MegaMoeStatus.Cancelled"/>).</summary>
public sealed class MegaMoeCancelledException : MegaMoeException
{
    /// <summary>Creates the exception without a native message.</summary>
    public MegaMoeCancelledException()
        : this(string.Empty)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    public MegaMoeCancelledException(string message)
        : this(message, null)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    /// <param name="innerException">The cause.</param>
    public MegaMoeCancelledException(string message, Exception? innerException)
        : base(MegaMoeStatus.Cancelled, message, innerException)
    {
    }
}

/// <summary>A bug in MegaMoe (<see cref="MegaMoeStatus.Internal"/>): please report the message.</summary>
public sealed class MegaMoeInternalException : MegaMoeException
{
    /// <summary>Creates the exception without a native message.</summary>
    public MegaMoeInternalException()
        : this(string.Empty)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    public MegaMoeInternalException(string message)
        : this(message, null)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The native message.</param>
    /// <param name="innerException">The cause.</param>
    public MegaMoeInternalException(string message, Exception? innerException)
        : base(MegaMoeStatus.Internal, message, innerException)
    {
    }
}
