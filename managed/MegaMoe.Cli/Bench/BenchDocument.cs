using System.Text.Json.Serialization;

namespace MegaMoe.Cli.Bench;

/// <summary>
/// A benchmark result file, in the schema of bench/results/*.json (written by the GPU harness too), so results of the
/// CLI and of the harness can be compared by the same scripts. Fields beyond the schema are additions, not changes.
/// </summary>
/// <param name="Commit">The source commit (short hash).</param>
/// <param name="Card">The device name (several joined with " + " when backends differ).</param>
/// <param name="Cuda">The CUDA runtime version, or null when no CUDA backend ran.</param>
/// <param name="Date">UTC date, yyyy-MM-dd.</param>
/// <param name="Protocol">How the numbers were taken.</param>
/// <param name="Results">One entry per shape, token count and backend.</param>
internal sealed record BenchDocument(string? Commit, string Card, string? Cuda, string Date, string Protocol, IReadOnlyList<BenchResult> Results);

/// <summary>One measurement; <c>name</c> is <c>moe/{model}_e{E}_k{k}_t{T}</c>, with <c>_ep{W}</c> under --ep.</summary>
/// <param name="Name">The benchmark name.</param>
/// <param name="MedianUs">Median forward time, microseconds.</param>
/// <param name="Tflops">Useful FP8 work per second (6·H·I per routed slot).</param>
/// <param name="Gbps">Minimum memory traffic per second (weights of the experts used, x, y, routing).</param>
/// <param name="BaselineTflops">A reference implementation's TFLOPS; null (the CLI runs none).</param>
/// <param name="Backend">cpu or cuda.</param>
/// <param name="Tokens">T (per rank under --ep).</param>
/// <param name="ArithmeticIntensity">Flops per byte of minimum traffic (the roofline's x axis).</param>
/// <param name="ExpertSpecialization">--expert-specialization of the layer: none, up, down or both.</param>
/// <param name="Ep">Under --ep, the group and each rank's times; left out otherwise.</param>
internal sealed record BenchResult(
    string Name, double MedianUs, double Tflops, double Gbps, double? BaselineTflops, string Backend, int Tokens, double ArithmeticIntensity,
    string ExpertSpecialization, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] EpReport? Ep = null);

/// <summary>An expert-parallel measurement (bench --ep): W ranks in one process over the loopback transport.</summary>
/// <param name="WorldSize">W.</param>
/// <param name="Ranks">Each rank's median times.</param>
internal sealed record EpReport(int WorldSize, IReadOnlyList<EpRankReport> Ranks);

/// <summary>One rank's median times, microseconds: the layer's dispatch, compute and combine, and the whole call.</summary>
/// <param name="Rank">The rank.</param>
/// <param name="DispatchUs">Quantize, pack, exchange and unpack.</param>
/// <param name="ComputeUs">The rank's experts on the tokens it received.</param>
/// <param name="CombineUs">Return, exchange and combine.</param>
/// <param name="TotalUs">The forward call (and synchronize), wall clock.</param>
internal sealed record EpRankReport(int Rank, double DispatchUs, double ComputeUs, double CombineUs, double TotalUs);
