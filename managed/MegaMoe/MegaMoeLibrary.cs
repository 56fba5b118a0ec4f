using MegaMoe.Interop;

namespace MegaMoe;

/// <summary>Facts about the loaded native library.</summary>
public static class MegaMoeLibrary
{
    /// <summary>The version the native library was built as.</summary>
    public static Version Version
    {
        get
        {
            NativeLibraryGuard.EnsureLoaded();
            return NativeLibraryGuard.DecodeVersion(NativeMethods.megamoe_version());
        }
    }

    /// <summary>"key=value;..." describing the native build (compiler, CUDA, CUTLASS, architectures).</summary>
    public static unsafe string BuildInfo
    {
        get
        {
            NativeLibraryGuard.EnsureLoaded();
            return NativeStatus.Utf8(NativeMethods.megamoe_build_info());
        }
    }

    /// <summary>
    /// Live native objects (contexts, buffers, layers, routed plans) in this process, for leak checks. Objects that
    /// were not disposed are freed by their finalizers.
    /// </summary>
    public static long LiveObjectCount
    {
        get
        {
            NativeLibraryGuard.EnsureLoaded();
            return NativeMethods.megamoe_live_object_count();
        }
    }
}
