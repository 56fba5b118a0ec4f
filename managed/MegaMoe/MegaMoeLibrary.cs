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

    /// <summary>
    /// The file the native library was loaded from: the one <c>MEGAMOE_NATIVE_PATH</c> names when it is set (no
    /// other copy is tried then), else the first of <c>runtimes/&lt;rid&gt;/native/</c> and the application
    /// directory that loads, else the bare library name given to the runtime's default search. Reading it loads
    /// and checks the library.
    /// </summary>
    /// <exception cref="DllNotFoundException">The library could not be loaded; the message lists what was tried.</exception>
    /// <exception cref="InvalidOperationException">The loaded library does not match this binding.</exception>
    public static string Path
    {
        get
        {
            NativeLibraryGuard.EnsureLoaded();
            return NativeLibraryLoader.LoadedPath;
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
