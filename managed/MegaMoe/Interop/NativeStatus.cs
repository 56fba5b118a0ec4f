using System.Runtime.InteropServices;

namespace MegaMoe.Interop;

/// <summary>Turns failed native statuses into exceptions.</summary>
internal static unsafe class NativeStatus
{
    /// <summary>
    /// Throws the <see cref="MegaMoeException"/> for <paramref name="status"/> unless it is
    /// <see cref="MegaMoeStatus.Success"/>. Call it right after the native call, on the same thread: the message
    /// is thread-local and the next failing call replaces it.
    /// </summary>
    public static void ThrowIfFailed(this MegaMoeStatus status)
    {
        if (status != MegaMoeStatus.Success)
        {
            throw MegaMoeException.Create(status, LastErrorMessage());
        }
    }

    /// <summary>
    /// <see cref="ThrowIfFailed(MegaMoeStatus)"/> for a <c>*_create</c> call: on failure the (invalid) handle the
    /// call produced is disposed first, so it does not linger in the finalizer queue.
    /// </summary>
    public static void ThrowIfFailed(this MegaMoeStatus status, SafeHandle created)
    {
        if (status != MegaMoeStatus.Success)
        {
            // Read the message before anything else can reach native code.
            MegaMoeException failure = MegaMoeException.Create(status, LastErrorMessage());
            created.Dispose();
            throw failure;
        }
    }

    /// <summary><c>megamoe_last_error_message()</c> of this thread.</summary>
    public static string LastErrorMessage() => Utf8(NativeMethods.megamoe_last_error_message());

    /// <summary>A native NUL-terminated UTF-8 string with static or thread-local storage; "" for NULL.</summary>
    public static string Utf8(byte* text) => Marshal.PtrToStringUTF8((nint)text) ?? string.Empty;
}
