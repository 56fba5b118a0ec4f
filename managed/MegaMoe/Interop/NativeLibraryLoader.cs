using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace MegaMoe.Interop;

/// <summary>
/// Finds and loads the native library for every <c>[LibraryImport("megamoe")]</c> of this assembly. The default
/// probing alone would miss a library built in a CMake tree or shipped under <c>runtimes/&lt;rid&gt;/native</c>
/// of a plain (non-NuGet) deployment, and its failure message names neither the paths it tried nor the reason.
/// </summary>
internal static class NativeLibraryLoader
{
    /// <summary>Environment variable naming the library file, or the directory that holds it.</summary>
    public const string PathVariable = "MEGAMOE_NATIVE_PATH";

    private static readonly Lazy<LoadedLibrary> s_library = new(() =>
    {
        string? required = ExplicitPath(Environment.GetEnvironmentVariable(PathVariable));
        return required is not null
            ? LoadRequired(required)
            : Load(CandidatePaths(null, AppContext.BaseDirectory), NativeMethods.LibraryName);
    });

    /// <summary>File name of the library on this operating system.</summary>
    public static string FileName { get; } =
        OperatingSystem.IsWindows() ? "megamoe.dll" : OperatingSystem.IsMacOS() ? "libmegamoe.dylib" : "libmegamoe.so";

    /// <summary>
    /// The loaded library; the first access loads it. Throws <see cref="DllNotFoundException"/> listing every path
    /// tried, what the loader said for each, and hints (the same exception again on later accesses).
    /// </summary>
    public static nint Handle => s_library.Value.Handle;

    /// <summary>
    /// The file the library was loaded from (the first access loads it); when only the runtime's default search
    /// found it, the name that search was given.
    /// </summary>
    public static string LoadedPath => s_library.Value.Path;

    /// <summary>The file named by a <see cref="PathVariable"/> value (a file, or a directory holding <see cref="FileName"/>).</summary>
    public static string? ExplicitPath(string? pathVariable) =>
        string.IsNullOrWhiteSpace(pathVariable) ? null
        : Directory.Exists(pathVariable) ? Path.Combine(pathVariable, FileName)
        : pathVariable;

    /// <summary>
    /// The files to try, in order: <see cref="PathVariable"/> (a file, or a directory holding <see cref="FileName"/>),
    /// <c>runtimes/&lt;rid&gt;/native/</c> under <paramref name="baseDirectory"/>, then <paramref name="baseDirectory"/>
    /// itself. The default search of the runtime comes after these.
    /// </summary>
    public static IReadOnlyList<string> CandidatePaths(string? pathVariable, string baseDirectory)
    {
        var candidates = new List<string>();
        if (ExplicitPath(pathVariable) is { } explicitPath)
        {
            candidates.Add(explicitPath);
        }

        foreach (string rid in RuntimeIdentifiers())
        {
            candidates.Add(Path.Combine(baseDirectory, "runtimes", rid, "native", FileName));
        }

        candidates.Add(Path.Combine(baseDirectory, FileName));
        return candidates;
    }

    [ModuleInitializer]
    [SuppressMessage(
        "Usage",
        "CA2255:The 'ModuleInitializer' attribute should not be used in libraries",
        Justification = "The resolver must be installed before the first P/Invoke of this assembly, whichever type makes it.")]
    internal static void InstallResolver() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraryLoader).Assembly, Resolve);

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName == NativeMethods.LibraryName ? Handle : nint.Zero;

    // The portable RID first ("linux-x64", the folder NuGet packages use), then the runtime's own when it differs.
    private static IEnumerable<string> RuntimeIdentifiers()
    {
        string arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
        string os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
        string portable = $"{os}-{arch}";
        yield return portable;
        if (!string.Equals(RuntimeInformation.RuntimeIdentifier, portable, StringComparison.Ordinal))
        {
            yield return RuntimeInformation.RuntimeIdentifier;
        }
    }

    /// <summary>
    /// Loads <paramref name="path"/> (the file <see cref="PathVariable"/> names) and nothing else: when the user chose
    /// a file, falling back to another copy would hide why theirs failed (e.g. a CUDA build on a machine without
    /// <c>libcuda.so.1</c>). Throws <see cref="DllNotFoundException"/> naming the path and the dynamic loader's error.
    /// </summary>
    internal static LoadedLibrary LoadRequired(string path)
    {
        string reason;
        if (!File.Exists(path))
        {
            reason = "  not found";
        }
        else
        {
            try
            {
                return new LoadedLibrary(NativeLibrary.Load(path), Path.GetFullPath(path));
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                reason = string.Join(Environment.NewLine, LoaderReasons(e).Select(r => "  " + r));
            }
        }

        throw new DllNotFoundException(
            $"""
            Could not load the MegaMoe native library from {path}, which {PathVariable} names (no other copy is tried
            while it is set):
            {reason}
            {Hints}
            """);
    }

    /// <summary>
    /// Loads the first of <paramref name="candidates"/> that exists and loads, else <paramref name="libraryName"/>
    /// through the runtime's default search; otherwise throws <see cref="DllNotFoundException"/> naming every attempt.
    /// </summary>
    internal static LoadedLibrary Load(IEnumerable<string> candidates, string libraryName)
    {
        var attempts = new StringBuilder();
        foreach (string path in candidates)
        {
            if (!File.Exists(path))
            {
                attempts.Append("  ").Append(path).AppendLine(": not found");
                continue;
            }

            try
            {
                return new LoadedLibrary(NativeLibrary.Load(path), Path.GetFullPath(path));
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                foreach (string reason in LoaderReasons(e))
                {
                    attempts.Append("  ").AppendLine(reason.StartsWith(path, StringComparison.Ordinal) ? reason : $"{path}: {reason}");
                }
            }
        }

        try
        {
            return new LoadedLibrary(
                NativeLibrary.Load(libraryName, typeof(NativeLibraryLoader).Assembly, searchPath: null), libraryName);
        }
        catch (DllNotFoundException e)
        {
            attempts.Append("  default search for '").Append(libraryName).AppendLine("' (LD_LIBRARY_PATH, system directories):");
            foreach (string reason in LoaderReasons(e))
            {
                attempts.Append("    ").AppendLine(reason);
            }
        }

        throw new DllNotFoundException(
            $"""
            Could not load the MegaMoe native library ({FileName}). Tried:
            {attempts}{Hints}
            """);
    }

    private static string Hints =>
        $"""
            Hints:
              - Set {PathVariable} to the library file or its directory (a CMake build puts it in build/<preset>/native).
              - "libcuda.so.1: cannot open shared object file": the library was built with CUDA and this machine has no
                NVIDIA driver; install the driver or use a CPU-only build (cmake --preset cpu).
              - "wrong ELF class" or "invalid ELF header": the file was built for another architecture than this
                {RuntimeInformation.ProcessArchitecture} process.
              - "GLIBC_2.xx not found" or "GLIBCXX_3.4.xx not found": the file was built against a newer C or C++
                runtime than this system has; rebuild it here.
            """;

    // The runtime's message starts with generic advice ("Unable to load shared library ... LD_DEBUG ...:") and then
    // gives the dynamic loader's error for each path it probed; only the latter says what went wrong.
    private static string[] LoaderReasons(Exception e)
    {
        string[] lines = e.Message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        return lines.Length > 1 && lines[0].StartsWith("Unable to load", StringComparison.Ordinal) ? lines[1..] : lines;
    }
}

/// <summary>A loaded native library and the file it came from.</summary>
internal readonly record struct LoadedLibrary(nint Handle, string Path);
