using System.Text.Json;
using FluentAssertions;
using MegaMoe.Cli.Bench;
using MegaMoe.Cli.Tests.Support;
using NUnit.Framework;
using ScottPlot;

namespace MegaMoe.Cli.Tests.Commands;

public sealed class BenchCommandTests
{
    [Test]
    public void TheSweepWritesResultsInTheBenchSchemaAndAPlot()
    {
        using var dir = new TempDirectory();
        string json = dir.File("results.json"), png = dir.File("plot.png");
        CliResult result = CliRunner.Run(["bench", .. CliRunner.TinyShape[2..], "--models", "custom", "--tokens", "1,4", "--tokens", "16", "--backends", "cpu", "--runs", "2", "--warmup", "0", "-o", json, "--plot", png, "--commit", "abc1234", "--json"]);
        result.ExitCode.Should().Be(0, result.ToString());

        JsonElement document = result.Json();
        document.EnumerateObject().Select(p => p.Name).Should().Contain(["commit", "card", "cuda", "date", "results"]);
        document.GetProperty("commit").GetString().Should().Be("abc1234");
        document.GetProperty("cuda").ValueKind.Should().Be(JsonValueKind.Null, "no CUDA backend ran");
        DateOnly.TryParseExact(document.GetProperty("date").GetString(), "yyyy-MM-dd", out _).Should().BeTrue();
        JsonElement[] results = [.. document.GetProperty("results").EnumerateArray()];
        results.Select(r => r.GetProperty("name").GetString()).Should().Equal("moe/custom_e4_k2_t1", "moe/custom_e4_k2_t4", "moe/custom_e4_k2_t16");
        foreach (JsonElement r in results)
        {
            r.GetProperty("median_us").GetDouble().Should().BePositive();
            r.GetProperty("tflops").GetDouble().Should().BeGreaterThanOrEqualTo(0);
            r.GetProperty("gbps").GetDouble().Should().BePositive();
            r.GetProperty("baseline_tflops").ValueKind.Should().Be(JsonValueKind.Null);
        }

        using (JsonDocument file = JsonDocument.Parse(File.ReadAllText(json)))
        {
            file.RootElement.GetProperty("results").GetArrayLength().Should().Be(3);
        }

        byte[] image = File.ReadAllBytes(png);
        image.Length.Should().BeGreaterThan(1000);
        image[..8].Should().Equal(0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A);
    }

    [Test]
    public void TheTableListsEveryPointAndSeveralModelsAreSwept()
    {
        using var dir = new TempDirectory();
        CliResult result = CliRunner.Run("bench", "--models", "custom,qwen3-30b", "--experts", "4", "--top-k", "2", "--hidden", "256", "--intermediate", "128", "--tokens", "2", "--runs", "1", "--plot", dir.File("p.png"), "--peak-tflops", "1", "--peak-gbps", "50");
        result.ExitCode.Should().Be(0, result.ToString());
        result.Stdout.Should().ContainAll("moe/custom_e4_k2_t2", "moe/qwen3-30b_e4_k2_t2", "median (us)", "TFLOPS", "plot:");
        File.Exists(dir.File("p.png")).Should().BeTrue();
    }

    [Test]
    public void ThePlotHasATitleAxisLabelsWithUnitsAndALegendEntryPerLine()
    {
        var document = new BenchDocument("abc1234", "NVIDIA H200", "13.0", "2026-12-01", "test", [
            new BenchResult("moe/qwen3-30b_e128_k8_t1", 50, 0.5, 900, null, "cuda", 1, 1.2, "none"),
            new BenchResult("moe/qwen3-30b_e128_k8_t128", 80, 40, 1200, null, "cuda", 128, 90, "none"),
            new BenchResult("moe/qwen3-30b_e128_k8_t1", 900, 0.01, 40, null, "cpu", 1, 1.2, "none"),
        ]);

        Plot plot = BenchPlot.Build(document, BenchPlot.KnownPeak(document.Card));

        plot.Axes.Title.Label.Text.Should().Contain("roofline").And.Contain("NVIDIA H200");
        plot.Axes.Bottom.Label.Text.Should().Contain("arithmetic intensity").And.Contain("FLOP/byte");
        plot.Axes.Left.Label.Text.Should().Contain("TFLOPS");
        plot.Legend.IsVisible.Should().BeTrue();
        plot.GetPlottables().OfType<ScottPlot.Plottables.Scatter>().Select(s => s.LegendText).Should().Equal(
            "qwen3-30b_e128_k8 (cuda)", "qwen3-30b_e128_k8 (cpu)", "roof: 1979 TFLOPS, 4800 GB/s");
        using (plot.GetImage(1000, 640))
        {
        }

        string[] yTicks = plot.Axes.Left.TickGenerator.Ticks.Where(t => t.IsMajor).Select(t => t.Label).ToArray();
        yTicks.Should().Contain(["0.01", "0.02", "0.05", "1", "1000"], "every 1-2-5 step of the log axis is labelled with its value");
    }

    [Test]
    public void AnExplicitGpuWithoutOneExitsWithThree()
    {
        if (CliRunner.CudaAvailable)
        {
            Assert.Ignore("a CUDA backend is available here");
        }

        CliResult result = CliRunner.Run(["bench", .. CliRunner.TinyShape[2..], "--models", "custom", "--tokens", "1", "--backends", "cpu,cuda", "--runs", "1"]);
        result.ExitCode.Should().Be(ExitCodes.BackendUnavailable, result.ToString());
        result.Stderr.Should().Contain("backend unavailable");
    }
}
