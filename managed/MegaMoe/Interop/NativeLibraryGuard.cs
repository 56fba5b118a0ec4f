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
    internal static void Verify(Version managed, int encodedNativeVersion, Func<string, long> nativeStructSize)
    {
        string binding = $"{typeof(NativeLibraryGuard).Assembly.GetName().Name} {managed.ToString(3)}";
        Version native = DecodeVersion(encodedNativeVersion);
        if (native.Major != managed.Major || native.Minor != managed.Minor)
        {
            throw new InvalidOperationException(
                $"The MegaMoe native library is version {native.ToString(3)} but this binding ({binding}) needs " +
                $"{managed.Major}.{managed.Minor}.x. Use the library built from the same sources, or point " +
                $"{NativeLibraryLoader.PathVariable} at it.");
        }

        foreach ((string typeName, int managedSize) in StructSizes)
        {
            long nativeSize = nativeStructSize(typeName);
            if (nativeSize != managedSize)
            {
                throw new InvalidOperationException(
                    $"The MegaMoe native library's {typeName} is {nativeSize} bytes but this binding ({binding}) " +
                    $"declares {managedSize}: they were built from different headers.");
            }
        }
    }

    private static (string TypeName, int Size)[] StructSizes =>
    [
        ("megamoe_tensor_t", sizeof(MegaMoeTensor)),
        ("megamoe_device_info_t", sizeof(MegaMoeDeviceInfo)),
        ("megamoe_moe_config_t", sizeof(MegaMoeMoeConfig)),
    ];

    private static bool Check()
    {
        _ = NativeLibraryLoader.Handle;
        Verify(ManagedVersion, NativeMethods.megamoe_version(), NativeMethods.megamoe_struct_size);
        return true;
    }
}
