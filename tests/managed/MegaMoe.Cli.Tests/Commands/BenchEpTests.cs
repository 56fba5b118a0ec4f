using System.Text.Json;
using FluentAssertions;
using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Synthetic;
using MegaMoe.Cli.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Cli.Tests.Commands;

/// <summary><c>megamoe bench --ep W</c>: W ranks in this process over the loopback transport, timed per rank.</summary>
public sealed class BenchEpTests
{
    [Test]
    public void TheJsonReportsEachRanksDispatchComputeCombineAndTotal()
    {
        CliResult result = CliRunner.Run(["bench", .. CliRunner.TinyShape[2..], "--models", "custom", "--tokens", "1,3", "--backends", "cpu", "--ep", "2", "--runs", "2", "--warmup", "1", "--json"]);
        result.ExitCode.Should().Be(0, result.ToString());

        JsonElement document = result.Json();
        document.GetProperty("protocol").GetString().Should().Contain("--ep 2");
        JsonElement[] results = [.. document.GetProperty("results").EnumerateArray()];
        results.Select(r => r.GetProperty("name").GetString()).Should().Equal("moe/custom_e4_k2_t1_ep2", "moe/custom_e4_k2_t3_ep2");
        foreach (JsonElement r in results)
        {
            r.GetProperty("median_us").GetDouble().Should().BePositive();
            JsonElement ep = r.GetProperty("ep");
            ep.GetProperty("world_size").GetInt32().Should().Be(2);
            JsonElement[] ranks = [.. ep.GetProperty("ranks").EnumerateArray()];
            ranks.Select(k => k.GetProperty("rank").GetInt32()).Should().Equal(0, 1);
            foreach (JsonElement rank in ranks)
            {
                double dispatch = rank.GetProperty("dispatch_us").GetDouble(), compute = rank.GetProperty("compute_us").GetDouble();
                double combine = rank.GetProperty("combine_us").GetDouble(), total = rank.GetProperty("total_us").GetDouble();
                new[] { dispatch, compute, combine }.Should().OnlyContain(us => us >= 0);
                total.Should().BeGreaterThanOrEqualTo(compute, "the call includes the compute");
            }
        }
    }

    [Test]
    public void TheTableShowsEveryRank()
    {
        CliResult result = CliRunner.Run(["bench", .. CliRunner.TinyShape[2..], "--models", "custom", "--tokens", "2", "--backends", "cpu", "--ep", "4", "--runs", "1"]);
        result.ExitCode.Should().Be(0, result.ToString());
        result.Stdout.Should().ContainAll("moe/custom_e4_k2_t2_ep4", "per-rank medians", "dispatch", "compute", "combine", "total");
    }

    [Test]
    public void WithoutEpTheResultsHaveNoEpField()
    {
        CliResult result = CliRunner.Run(["bench", .. CliRunner.TinyShape[2..], "--models", "custom", "--tokens", "1", "--backends", "cpu", "--runs", "1", "--json"]);
        result.ExitCode.Should().Be(0, result.ToString());
        result.Json().GetProperty("results")[0].TryGetProperty("ep", out _).Should().BeFalse();
    }

    [Test]
    public void MoreRanksThanExpertsIsAUsageError()
    {
        CliResult result = CliRunner.Run(["bench", .. CliRunner.TinyShape[2..], "--models", "custom", "--tokens", "1", "--ep", "5"]);
        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Stderr.Should().Contain("--ep 5 needs at least 5 experts");
    }

    [Test]
    public void AnExpertRangeReadsTheExpertsOfItsRange()
    {
        var all = new SyntheticMoe(6, 256, 128, 7);
        var range = new ExpertRange(all, 2, 3);
        range.Experts.Should().Be(3);
        (range.Hidden, range.Intermediate).Should().Be((256L, 128L));
        byte[] want = new byte[2 * 128 * 256], got = new byte[want.Length];
        all.ReadW13(4, want);
        range.ReadW13(2, got);
        got.Should().Equal(want);
        float[] wantScales = new float[2 * 2], gotScales = new float[4];
        all.ReadW2Scales(2, wantScales);
        range.ReadW2Scales(0, gotScales);
        gotScales.Should().Equal(wantScales);
        FluentActions.Invoking(() => range.ReadW2(3, new byte[256 * 128])).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => new ExpertRange(all, 4, 3)).Should().Throw<ArgumentOutOfRangeException>();
    }
}
