using System.Runtime.InteropServices;
using FluentAssertions;
using MegaMoe.Interop;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>Where the native library is looked for.</summary>
[TestFixture]
public sealed class LoaderTests
{
    [Test]
    public void SearchesTheVariableThenRuntimesThenTheBaseDirectory()
    {
        string file = Path.Combine(Path.GetTempPath(), "custom", "libmegamoe-test.so");

        IReadOnlyList<string> paths = NativeLibraryLoader.CandidatePaths(file, "/app");

        paths[0].Should().Be(file, "a file path is taken as is, even when it does not exist");
        paths.Should().Contain(Path.Combine("/app", "runtimes", PortableRid, "native", NativeLibraryLoader.FileName));
        paths.Should().Contain(Path.Combine("/app", "runtimes", RuntimeInformation.RuntimeIdentifier, "native", NativeLibraryLoader.FileName));
        paths[^1].Should().Be(Path.Combine("/app", NativeLibraryLoader.FileName));
    }

    [Test]
    public void VariableNamingADirectoryIsSearchedForTheLibrary()
    {
        string directory = Path.GetTempPath();

        NativeLibraryLoader.CandidatePaths(directory, "/app")[0].Should().Be(Path.Combine(directory, NativeLibraryLoader.FileName));
    }

    [Test]
    public void UnsetVariableAddsNothing() =>
        NativeLibraryLoader.CandidatePaths(null, "/app").Should().OnlyContain(p => p.StartsWith("/app", StringComparison.Ordinal));

    [Test]
    public void FailureListsEveryAttemptWithItsReason()
    {
        string missing = Path.Combine(Path.GetTempPath(), "megamoe-absent", "libmegamoe.so");
        string notALibrary = Path.Combine(AppContext.BaseDirectory, "megamoe.h");

        Action load = () => NativeLibraryLoader.Load([missing, notALibrary], "megamoe-absent-for-test");

        string message = load.Should().Throw<DllNotFoundException>().Which.Message;
        TestContext.Out.WriteLine(message);
        message.Should().Contain($"{missing}: not found")
            .And.Contain(notALibrary)
            .And.Contain("megamoe-absent-for-test")
            .And.Contain(NativeLibraryLoader.PathVariable)
            .And.Contain("libcuda.so.1");
    }

    [Test]
    public void ExplicitPathThatDoesNotExistIsFinal()
    {
        string missing = Path.Combine(Path.GetTempPath(), "megamoe-absent", "libmegamoe.so");

        Action load = () => NativeLibraryLoader.LoadRequired(missing);

        string message = load.Should().Throw<DllNotFoundException>().Which.Message;
        message.Should().Contain(missing).And.Contain("not found").And.Contain(NativeLibraryLoader.PathVariable);
    }

    [Test]
    public void ExplicitPathThatFailsToLoadIsFinalAndGivesTheLoaderError()
    {
        string notALibrary = Path.Combine(AppContext.BaseDirectory, "megamoe.h");

        Action load = () => NativeLibraryLoader.LoadRequired(notALibrary);

        string message = load.Should().Throw<DllNotFoundException>().Which.Message;
        TestContext.Out.WriteLine(message);
        message.Should().Contain(notALibrary).And.Contain("no other copy is tried");
        message.Split('\n').Count(line => line.Contains(notALibrary, StringComparison.Ordinal))
            .Should().BeGreaterThan(1, "the dynamic loader's own error (which names the file) is included");
    }

    [Test]
    public void LoadedPathIsReported()
    {
        string path = MegaMoeLibrary.Path;

        path.Should().Be(NativeLibraryLoader.LoadedPath);
        File.Exists(path).Should().BeTrue("the test run loads the library from a file it found: {0}", path);
    }

    [Test]
    public void OtherMinorVersionIsRejected()
    {
        Action verify = () => NativeLibraryGuard.Verify(new Version(0, 1, 0), 200, RealStructSize, "/x/libmegamoe.so");

        verify.Should().Throw<InvalidOperationException>().WithMessage("*/x/libmegamoe.so*version 0.2.0*needs 0.1.x*");
    }

    [Test]
    public void OtherPatchVersionIsAccepted() =>
        FluentActions.Invoking(() => NativeLibraryGuard.Verify(new Version(0, 1, 0), 107, RealStructSize)).Should().NotThrow();

    [Test]
    public void StructSizeMismatchIsRejected()
    {
        Action verify = () => NativeLibraryGuard.Verify(
            new Version(0, 1, 0), 100, name => name == "megamoe_moe_config_t" ? 80 : RealStructSize(name), "/x/libmegamoe.so");

        verify.Should().Throw<InvalidOperationException>().WithMessage("*/x/libmegamoe.so*megamoe_moe_config_t is 80 bytes*declares 72*");
    }

    [Test]
    public void LoadedLibraryPassesTheGuard()
    {
        FluentActions.Invoking(NativeLibraryGuard.EnsureLoaded).Should().NotThrow();
        NativeLibraryLoader.Handle.Should().NotBe(0);
    }

    // The portable RID NuGet packages use ("linux-x64"), derived from the running process.
    private static string PortableRid =>
        $"{(OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux")}-" +
        RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();

    private static long RealStructSize(string name) => NativeMethods.megamoe_struct_size(name);
}
