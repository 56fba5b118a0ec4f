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
        paths.Should().Contain(Path.Combine("/app", "runtimes", "linux-x64", "native", "libmegamoe.so"));
        paths[^1].Should().Be(Path.Combine("/app", "libmegamoe.so"));
    }

    [Test]
    public void VariableNamingADirectoryIsSearchedForTheLibrary()
    {
        string directory = Path.GetTempPath();

        NativeLibraryLoader.CandidatePaths(directory, "/app")[0].Should().Be(Path.Combine(directory, "libmegamoe.so"));
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
    public void OtherMinorVersionIsRejected()
    {
        Action verify = () => NativeLibraryGuard.Verify(new Version(0, 1, 0), 200, RealStructSize);

        verify.Should().Throw<InvalidOperationException>().WithMessage("*version 0.2.0*needs 0.1.x*");
    }

    [Test]
    public void OtherPatchVersionIsAccepted() =>
        FluentActions.Invoking(() => NativeLibraryGuard.Verify(new Version(0, 1, 0), 107, RealStructSize)).Should().NotThrow();

    [Test]
    public void StructSizeMismatchIsRejected()
    {
        Action verify = () => NativeLibraryGuard.Verify(
            new Version(0, 1, 0), 100, name => name == "megamoe_moe_config_t" ? 80 : RealStructSize(name));

        verify.Should().Throw<InvalidOperationException>().WithMessage("*megamoe_moe_config_t is 80 bytes*declares 72*");
    }

    [Test]
    public void LoadedLibraryPassesTheGuard()
    {
        FluentActions.Invoking(NativeLibraryGuard.EnsureLoaded).Should().NotThrow();
        NativeLibraryLoader.Handle.Should().NotBe(0);
    }

    private static long RealStructSize(string name) => NativeMethods.megamoe_struct_size(name);
}
