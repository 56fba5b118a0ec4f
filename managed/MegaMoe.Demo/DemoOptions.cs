using System.Globalization;
using System.Numerics;

namespace MegaMoe.Demo;

/// <summary>Command line of the demo.</summary>
internal sealed record DemoOptions
{
    public const string Usage = """
        Usage: MegaMoe.Demo [options]
          --tokens N          tokens in the batch (default 16)
          --backend NAME      best | cpu | cuda (default best)
          --experts N         experts E (default 32)
          --top-k N           experts per token (default 8, at most E)
          --hidden N          hidden size H, a multiple of 128 (default 7168)
          --intermediate N    expert intermediate size I, a multiple of 128 (default 2048)
          --seed N            seed of the random weights, inputs and routing (default 1)
          --runs N            timed forward passes; the median is reported (default 3)
        """;

    public int Tokens { get; init; } = 16;

    public Backend Backend { get; init; } = Backend.Best;

    public int Experts { get; init; } = 32;

    public int TopK { get; init; } = 8;

    public long Hidden { get; init; } = 7168;

    public long Intermediate { get; init; } = 2048;

    public ulong Seed { get; init; } = 1;

    public int Runs { get; init; } = 3;

    /// <summary>DeepSeek-V3 multiplies every routing weight by 2.5.</summary>
    public const float RoutedScalingFactor = 2.5f;

    /// <summary>Parses <paramref name="args"/>; throws <see cref="FormatException"/> with a message for the user.</summary>
    public static DemoOptions Parse(IReadOnlyList<string> args)
    {
        var options = new DemoOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string name = args[i];
            string Value() => ++i < args.Count ? args[i] : throw new FormatException($"{name} needs a value.");
            options = name switch
            {
                "--tokens" => options with { Tokens = Positive<int>(name, Value(), allowZero: true) },
                "--backend" => options with { Backend = ParseBackend(Value()) },
                "--experts" => options with { Experts = Positive<int>(name, Value()) },
                "--top-k" => options with { TopK = Positive<int>(name, Value()) },
                "--hidden" => options with { Hidden = Positive<long>(name, Value()) },
                "--intermediate" => options with { Intermediate = Positive<long>(name, Value()) },
                "--seed" => options with { Seed = ulong.Parse(Value(), CultureInfo.InvariantCulture) },
                "--runs" => options with { Runs = Positive<int>(name, Value()) },
                _ => throw new FormatException($"Unknown option {name}."),
            };
        }

        // The layer itself validates the shape; only what the demo needs to draw routing is checked here.
        if (options.TopK > options.Experts)
        {
            throw new FormatException($"--top-k {options.TopK} is larger than --experts {options.Experts}.");
        }

        return options;
    }

    private static T Positive<T>(string name, string text, bool allowZero = false)
        where T : struct, IBinaryInteger<T>
    {
        if (!T.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out T value) || T.IsNegative(value)
            || (!allowZero && T.IsZero(value)))
        {
            throw new FormatException($"{name} takes a {(allowZero ? "non-negative" : "positive")} integer, not '{text}'.");
        }

        return value;
    }

    private static Backend ParseBackend(string text) => text.ToUpperInvariant() switch
    {
        "BEST" => Backend.Best,
        "CPU" => Backend.Cpu,
        "CUDA" => Backend.Cuda,
        _ => throw new FormatException($"--backend takes best, cpu or cuda, not '{text}'."),
    };
}
