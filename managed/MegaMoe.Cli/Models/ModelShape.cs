namespace MegaMoe.Cli.Models;

/// <summary>The routed-expert part of a MoE model: what one MoE layer of it computes.</summary>
/// <param name="Name">The name used on the command line and in benchmark names.</param>
/// <param name="Experts">E, routed experts.</param>
/// <param name="TopK">Experts per token.</param>
/// <param name="Hidden">H.</param>
/// <param name="Intermediate">I, per expert.</param>
/// <param name="RoutedScalingFactor">Multiplies every routing weight.</param>
internal sealed record ModelShape(string Name, int Experts, int TopK, long Hidden, long Intermediate, float RoutedScalingFactor)
{
    /// <summary>The name of a shape given entirely by --experts, --top-k, --hidden and --intermediate.</summary>
    public const string Custom = "custom";

    /// <summary>The models the CLI knows by name, from their published configurations.</summary>
    public static IReadOnlyList<ModelShape> Known { get; } =
    [
        new("deepseek-v3", Experts: 256, TopK: 8, Hidden: 7168, Intermediate: 2048, RoutedScalingFactor: 2.5f),
        new("qwen3-235b", Experts: 128, TopK: 8, Hidden: 4096, Intermediate: 1536, RoutedScalingFactor: 1f),
        new("qwen3-30b", Experts: 128, TopK: 8, Hidden: 2048, Intermediate: 768, RoutedScalingFactor: 1f),
    ];

    /// <summary>Every name --model accepts.</summary>
    public static string[] Names => [.. Known.Select(m => m.Name), Custom];

    /// <summary>FP8 bytes of all experts' weights (scales aside).</summary>
    public long WeightBytes => Experts * 3 * Hidden * Intermediate;

    /// <summary>"E=256 k=8 H=7168 I=2048".</summary>
    public string Describe() => $"E={Experts} k={TopK} H={Hidden} I={Intermediate}";

    /// <summary>The benchmark name of this shape at <paramref name="tokens"/> tokens (bench/results naming).</summary>
    public string BenchName(int tokens) => $"moe/{Name}_e{Experts}_k{TopK}_t{tokens}";

    /// <summary>Checks what the CLI itself relies on (the layer validates the rest, e.g. multiples of 128).</summary>
    public void Validate()
    {
        if (Experts <= 0 || TopK <= 0 || Hidden <= 0 || Intermediate <= 0)
        {
            throw CliException.Usage($"{Name}: experts, top-k, hidden and intermediate must be positive ({Describe()}).");
        }

        if (TopK > Experts)
        {
            throw CliException.Usage($"{Name}: top-k {TopK} is larger than the number of experts {Experts}.");
        }

        if (Hidden % 128 != 0 || Intermediate % 128 != 0)
        {
            throw CliException.Usage($"{Name}: hidden {Hidden} and intermediate {Intermediate} must be multiples of 128 (the FP8 block size).");
        }

        // Weights are made and read one expert matrix at a time, each in one .NET array.
        if (2 * Intermediate > Array.MaxLength / Hidden)
        {
            throw CliException.Usage($"{Name}: one expert's [2I, H] = [{2 * Intermediate}, {Hidden}] weights do not fit one .NET array ({Array.MaxLength} elements); use a smaller --hidden or --intermediate.");
        }
    }

    /// <summary>The most tokens of one batch: the CLI holds a batch's widest rows, [T, max(H, 2I)], in one .NET array.</summary>
    public int MaxTokens => (int)(Array.MaxLength / Math.Max(Hidden, 2 * Intermediate));

    /// <summary>Refuses a batch the CLI cannot hold (a usage error naming the limit), before anything is allocated.</summary>
    public void CheckTokens(int tokens)
    {
        if (tokens > MaxTokens)
        {
            throw CliException.Usage($"--tokens {tokens} is too many for {Name} ({Describe()}): at most {MaxTokens} tokens, whose [T, {Math.Max(Hidden, 2 * Intermediate)}] values fill one .NET array.");
        }
    }
}
