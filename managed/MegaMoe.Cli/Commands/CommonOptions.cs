using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using MegaMoe.Cli.Models;
using MegaMoe.Cli.Running;

namespace MegaMoe.Cli.Commands;

/// <summary>Options shared by several commands, built once per command so each shows up in its --help.</summary>
internal static class CommonOptions
{
    /// <summary>--json, recognised by every command (declared once on the root, inherited).</summary>
    public static Option<bool> Json { get; } = new("--json")
    {
        Description = "Print the result as JSON on standard output (messages and progress go to standard error)",
        Recursive = true,
    };

    /// <summary>--backend as a lowercase name (what help shows); <see cref="ToBackend"/> converts it.</summary>
    public static Option<string> Backend(string description, Backend defaultValue)
    {
        var option = new Option<string>("--backend", "-b")
        {
            Description = description,
            DefaultValueFactory = _ => defaultValue.ToString().ToLowerInvariant(),
        };
        option.AcceptOnlyFromAmong("best", "cpu", "cuda");
        return option;
    }

    public static Backend ToBackend(string? name) => ParseBackend(name ?? "best").Item2;

    /// <summary>--expert-specialization as a lowercase name; <see cref="ExpertSpecializations.Parse"/> converts it.</summary>
    public static Option<string> ExpertSpecialization()
    {
        var option = new Option<string>("--expert-specialization")
        {
            Description = "Expert specialization of the layer's projections: none, up, down or both (CUDA backend; the CPU backend ignores it)",
            DefaultValueFactory = _ => "none",
        };
        option.AcceptOnlyFromAmong(ExpertSpecializations.Names);
        return option;
    }

    public static Option<ulong> Seed() => new("--seed")
    {
        Description = "Seed of the random weights, activations and routing",
        DefaultValueFactory = _ => 1,
    };

    /// <summary>--threads: 0 (one per hardware thread) up to the library's 4096.</summary>
    public static Option<int> Threads() => Positive("--threads", "CPU backend worker threads, up to 4096 (default: one per hardware thread)", 0, allowZero: true, max: 4096);

    /// <summary>--tokens of run: one batch of at least one token (the bound for the shape is <see cref="ModelShape.CheckTokens"/>).</summary>
    public static Option<int> Tokens(string description, int defaultValue) => Positive("--tokens", description, defaultValue);

    /// <summary>--tokens of bench and verify: a list of token counts, each at least 1.</summary>
    public static Option<int[]> TokenList(string description, int[] defaultValue) =>
        List("--tokens", description, defaultValue, ParseTokenCount, $"token counts from 1 to {int.MaxValue}");

    // A custom parser rather than a validator: a validator would see "many" only as a conversion exception.
    public static Option<int> Positive(string name, string description, int defaultValue, bool allowZero = false, int max = int.MaxValue) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result =>
        {
            string text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : string.Empty;
            int min = allowZero ? 0 : 1;
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
            {
                result.AddError($"{name} takes a {(allowZero ? "non-negative" : "positive")} integer ({min} to {max}), not '{text}'.");
            }

            return value;
        },
    };

    /// <summary>
    /// A list option that also takes comma-separated values: <c>--tokens 1,16,128</c> or <c>--tokens 1 16 128</c>;
    /// <paramref name="expected"/> says what a value may be, for the message about one that is not.
    /// </summary>
    public static Option<T[]> List<T>(string name, string description, T[] defaultValue, Func<string, (bool Ok, T Value)> parse, string expected)
    {
        return new Option<T[]>(name)
        {
            Description = description,
            AllowMultipleArgumentsPerToken = true,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = result =>
            {
                var values = new List<T>();
                foreach (string item in result.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
                {
                    (bool ok, T value) = parse(item);
                    if (ok)
                    {
                        values.Add(value);
                    }
                    else
                    {
                        result.AddError($"{name} takes {expected}, not '{item}'.");
                    }
                }

                return [.. values];
            },
        };
    }

    public static (bool, int) ParseTokenCount(string text) =>
        (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value > 0, value);

    // Names only: Enum.TryParse would also take "7".
    public static (bool, Backend) ParseBackend(string text) =>
        (Enum.TryParse(text, ignoreCase: true, out Backend value) && Enum.IsDefined(value) && !char.IsDigit(text[0]), value);

    public static (bool, string) ParseModel(string text) => (ModelShape.Names.Contains(text), text);

    /// <summary>"one of deepseek-v3, qwen3-235b, qwen3-30b or custom", for messages.</summary>
    public static string ModelNames => $"one of {string.Join(", ", ModelShape.Names[..^1])} or {ModelShape.Names[^1]}";
}

/// <summary>--model and the options that override its shape.</summary>
internal sealed class ShapeOptions
{
    private readonly int? _expertsWithoutModel;

    public Option<string> Model { get; } = new("--model", "-m")
    {
        Description = $"Model shape: {string.Join(", ", ModelShape.Names)} (custom needs --experts, --top-k, --hidden and --intermediate)",
        DefaultValueFactory = _ => "deepseek-v3",
    };

    public Option<int?> Experts { get; } = new("--experts", "-e") { Description = "Override E, the number of routed experts (fewer experts need less memory)" };

    public Option<int?> TopK { get; } = new("--top-k", "-k") { Description = "Override the experts per token" };

    public Option<long?> Hidden { get; } = new("--hidden") { Description = "Override H, the hidden size (a multiple of 128)" };

    public Option<long?> Intermediate { get; } = new("--intermediate") { Description = "Override I, the expert intermediate size (a multiple of 128)" };

    public Option<float?> RoutedScaling { get; } = new("--routed-scaling") { Description = "Override the routed scaling factor (2.5 for deepseek-v3, else 1)" };

    /// <param name="expertsWithoutModel">E when neither --model nor --experts is given (else the model's E).</param>
    public ShapeOptions(int? expertsWithoutModel = null)
    {
        _expertsWithoutModel = expertsWithoutModel;
        Model.AcceptOnlyFromAmong(ModelShape.Names);
        if (expertsWithoutModel is { } experts)
        {
            Experts.Description += $"; {experts} when --model is not given either";
        }
    }

    /// <summary>Whether the user gave <paramref name="option"/> (rather than it taking its default).</summary>
    public static bool Given(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    public void AddTo(Command command, bool withModel = true)
    {
        if (withModel)
        {
            command.Options.Add(Model);
        }

        command.Options.Add(Experts);
        command.Options.Add(TopK);
        command.Options.Add(Hidden);
        command.Options.Add(Intermediate);
        command.Options.Add(RoutedScaling);
    }

    /// <summary>The shape of --model <paramref name="name"/> with the overrides applied.</summary>
    public ModelShape Resolve(ParseResult parse, string name)
    {
        ModelShape? known = ModelShape.Known.FirstOrDefault(m => m.Name == name);
        int? experts = parse.GetValue(Experts) ?? (Given(parse, Model) ? null : _expertsWithoutModel), topK = parse.GetValue(TopK);
        long? hidden = parse.GetValue(Hidden), intermediate = parse.GetValue(Intermediate);
        if (known is null && (experts is null || topK is null || hidden is null || intermediate is null))
        {
            throw CliException.Usage("--model custom needs --experts, --top-k, --hidden and --intermediate.");
        }

        var shape = new ModelShape(
            name,
            experts ?? known!.Experts,
            topK ?? known!.TopK,
            hidden ?? known!.Hidden,
            intermediate ?? known!.Intermediate,
            parse.GetValue(RoutedScaling) ?? known?.RoutedScalingFactor ?? 1f);
        shape.Validate();
        return shape;
    }
}
