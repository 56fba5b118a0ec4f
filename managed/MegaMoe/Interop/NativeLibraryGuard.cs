namespace MegaMoe.Interop;

/// <summary>
/// Checks once that the loaded native library is the one this binding was written for: same major.minor version
/// and the same struct sizes. Every public entry point that reaches native code without an existing handle calls
/// <see cref="EnsureLoaded"/>, so a missing or mismatched library surfaces as a plain, explained exception there
/// rather than as a <see cref="TypeInitializationException"/> or a crash in a later call.
/// </summary>
internal static unsafe class NativeLibraryGuard
{
    // Lazy caches a failure and rethrows it on every later call.
    private static readonly Lazy<bool> s_checked = new(Check);

    /// <summary>Loads and checks the library on first use; throws the same exception every time if it is unusable.</summary>
    public static void EnsureLoaded() => _ = s_checked.Value;

    /// <summary>The version this assembly was built for (from <c>megamoe.h</c>, through its assembly version).</summary>
    public static Version ManagedVersion { get; } =
        typeof(NativeLibraryGuard).Assembly.GetName().Version ?? new Version(0, 0, 0);

    /// <summary>A version encoded like <c>MEGAMOE_VERSION</c>: major * 10000 + minor * 100 + patch.</summary>
    public static Version DecodeVersion(int encoded) => new(encoded / 10000, encoded / 100 % 100, encoded % 100);

    /// <summary>
    /// Throws <see cref="InvalidOperationException"/> unless the native library (its encoded version and its
    /// <c>megamoe_struct_size</c>) matches <paramref name="managed"/> and this binding's struct declarations.
    /// </summary>
    /// <param name="managed">The version this binding was built for.</param>
    /// <param name="encodedNativeVersion"><c>megamoe_version()</c> of the loaded library.</param>
    /// <param name="nativeStructSize"><c>megamoe_struct_size</c> of the loaded library.</param>
    /// <param name="libraryPath">The loaded file, for the message; <see cref="NativeLibraryLoader.LoadedPath"/> if null.</param>
    internal static void Verify(
        Version managed, int encodedNativeVersion, Func<string, long> nativeStructSize, string? libraryPath = null)
    {
        string binding = $"{typeof(NativeLibraryGuard).Assembly.GetName().Name} {managed.ToString(3)}";
        string path = libraryPath ?? NativeLibraryLoader.LoadedPath;
        Version native = DecodeVersion(encodedNativeVersion);
        if (native.Major != managed.Major || native.Minor != managed.Minor)
        {
            throw new InvalidOperationException(
                $"The MegaMoe native library {path} is version {native.ToString(3)} but this binding ({binding}) needs " +
                $"{managed.Major}.{managed.Minor}.x. Use the library built from the same sources, or point " +
                $"{NativeLibraryLoader.PathVariable} at it.");
        }

        foreach ((string typeName, int managedSize) in StructSizes)
        {
            long nativeSize = nativeStructSize(typeName);
            if (nativeSize != managedSize)
            {
                throw new InvalidOperationException(
                    $"The MegaMoe native library {path}: its {typeName} is {nativeSize} bytes but this binding ({binding}) " +
                    $"declares {managedSize}: they were built from different headers.");
            }
        }
    }

    /// <summary>
    /// Throws <see cref="InvalidOperationException"/> naming <paramref name="libraryPath"/> and every function of
    /// <paramref name="functions"/> that <paramref name="isExported"/> rejects: the file is not a MegaMoe library of
    /// this API (or an older one), and calling into it would fail with <see cref="EntryPointNotFoundException"/>.
    /// </summary>
    internal static void VerifyExports(IEnumerable<string> functions, Func<string, bool> isExported, string libraryPath)
    {
        string[] missing = functions.Where(name => !isExported(name)).ToArray();
        if (missing.Length > 0)
        {
            throw new InvalidOperationException(
                $"The native library {libraryPath} does not export {string.Join(", ", missing)}, which this binding " +
                $"({typeof(NativeLibraryGuard).Assembly.GetName().Name} {ManagedVersion.ToString(3)}) imports: it is " +
                $"not the MegaMoe library built from the same sources. Point {NativeLibraryLoader.PathVariable} at that one.");
        }
    }

    private static readonly (string TypeName, int Size)[] StructSizes =
    [
        ("megamoe_tensor_t", sizeof(MegaMoeTensor)),
        ("megamoe_device_info_t", sizeof(MegaMoeDeviceInfo)),
        ("megamoe_moe_config_t", sizeof(MegaMoeMoeConfig)),
        ("megamoe_ep_config_t", sizeof(MegaMoeEpConfig)),
    ];

    private static bool Check()
    {
        nint handle = NativeLibraryLoader.Handle;
        VerifyExports(
            NativeMethods.ImportedFunctions,
            name => System.Runtime.InteropServices.NativeLibrary.TryGetExport(handle, name, out _),
            NativeLibraryLoader.LoadedPath);
        Verify(ManagedVersion, NativeMethods.megamoe_version(), NativeMethods.megamoe_struct_size);
        return true;
    }
}
