using System.Text.Json;
using FluentAssertions;
using MegaMoe.Cli.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Cli.Tests.Commands;

public sealed class InfoCommandTests
{
    [Test]
    public void JsonReportsVersionsBuildAndBackends()
    {
        CliResult result = CliRunner.Run("info", "--json");
        result.ExitCode.Should().Be(0, result.ToString());
        JsonElement info = result.Json();
        string version = typeof(MoeContext).Assembly.GetName().Version!.ToString(3);
        info.GetProperty("native_version").GetString().Should().Be(version);
        info.GetProperty("managed_version").GetString().Should().Be(version);
        info.GetProperty("cli_version").GetString().Should().StartWith(version);
        info.GetProperty("library_path").GetString().Should().EndWith("libmegamoe.so");
        info.GetProperty("build_info").GetProperty("version").GetString().Should().Be(version);

        JsonElement[] backends = [.. info.GetProperty("backends").EnumerateArray()];
        backends.Select(b => b.GetProperty("name").GetString()).Should().Equal("cpu", "cuda");
        JsonElement cpu = backends[0];
        cpu.GetProperty("available").GetBoolean().Should().BeTrue();
        cpu.GetProperty("device").GetProperty("multiprocessor_count").GetInt32().Should().BePositive();
        cpu.GetProperty("device").GetProperty("total_memory_bytes").GetInt64().Should().BePositive();

        JsonElement cuda = backends[1];
        if (CliRunner.CudaAvailable)
        {
            cuda.GetProperty("device").GetProperty("compute_capability").GetString().Should().Be("9.0");
            cuda.GetProperty("device").GetProperty("cuda_driver").GetString().Should().NotBeNullOrEmpty();
        }
        else
        {
            cuda.GetProperty("available").GetBoolean().Should().BeFalse();
            cuda.GetProperty("reason").GetString().Should().Contain("megamoe_context_create").And.Contain("CUDA");
            cuda.GetProperty("device").ValueKind.Should().Be(JsonValueKind.Null);
        }
    }

    [Test]
    public void TheTableExplainsAnUnavailableGpu()
    {
        CliResult result = CliRunner.Run("info");
        result.ExitCode.Should().Be(0, result.ToString());
        result.Stdout.Should().Contain("native library").And.Contain("cpu").And.Contain("available");
        if (!CliRunner.CudaAvailable)
        {
            result.Stdout.Should().Contain("cuda backend unavailable: megamoe_context_create: the CUDA backend is unavailable");
            result.Stdout.Should().Contain("Everything still runs on the CPU backend");
        }
    }
}
