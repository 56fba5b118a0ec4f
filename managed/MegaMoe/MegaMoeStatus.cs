namespace MegaMoe;

/// <summary>Result of a native MegaMoe call (<c>megamoe_status_t</c>).</summary>
public enum MegaMoeStatus
{
    /// <summary>The call succeeded.</summary>
    Success = 0,

    /// <summary>A handle, pointer, descriptor or value is wrong (dtype, rank, shape, stride, alignment, range).</summary>
    InvalidArgument = 1,

    /// <summary>The request is well formed but this backend or build does not support it.</summary>
    Unsupported = 2,

    /// <summary>The backend asked for is not usable here: built without CUDA, no driver, no SM90 device.</summary>
    BackendUnavailable = 3,

    /// <summary>Host or device memory ran out.</summary>
    OutOfMemory = 4,

    /// <summary>The CUDA runtime or driver reported an error.</summary>
    Device = 5,

    /// <summary>A progress callback asked to stop; nothing was created.</summary>
    Cancelled = 6,

    /// <summary>A bug in MegaMoe.</summary>
    Internal = 7,
}
