using System.Globalization;
using System.Text.RegularExpressions;

namespace MegaMoe.Checkpoints.Experts;

/// <summary>Which matrix of an expert a tensor holds.</summary>
public enum ExpertProjection
{
    /// <summary><c>gate_proj</c> [I, H].</summary>
    Gate,

    /// <summary><c>up_proj</c> [I, H].</summary>
    Up,

    /// <summary><c>down_proj</c> [H, I].</summary>
    Down,

    /// <summary><c>gate_up_proj</c> [2I, H]: gate and up fused, rows interleaved by 8 (written by <c>megamoe convert --interleave</c>).</summary>
    GateUp,
}

/// <summary>
/// The names of routed-expert tensors in DeepSeek-V3-style checkpoints:
/// <c>model.layers.{L}.mlp.experts.{E}.{gate,up,down}_proj.weight</c>, each FP8 weight with a float32
/// <c>.weight_scale_inv</c> beside it.
/// </summary>
/// <param name="Layer">L.</param>
/// <param name="Expert">E.</param>
/// <param name="Projection">The matrix.</param>
/// <param name="IsScale">Whether the name is the matrix's <c>weight_scale_inv</c> rather than its <c>weight</c>.</param>
public readonly partial record struct ExpertTensorName(int Layer, int Expert, ExpertProjection Projection, bool IsScale = false)
{
    /// <summary>
    /// Shard metadata key saying how a <see cref="ExpertProjection.GateUp"/> tensor's rows are ordered; MegaMoe writes
    /// <see cref="Interleave8Layout"/>. Fused gate/up tensors from elsewhere use other orders, so they are not guessed at.
    /// </summary>
    public const string W13LayoutMetadataKey = "megamoe.w13_layout";

    /// <summary>The value of <see cref="W13LayoutMetadataKey"/> for gate 0-7, up 0-7, gate 8-15, ... rows.</summary>
    public const string Interleave8Layout = "interleave8";

    /// <summary>The full tensor name.</summary>
    public override string ToString() =>
        string.Create(
            CultureInfo.InvariantCulture,
            $"model.layers.{Layer}.mlp.experts.{Expert}.{ProjectionName(Projection)}.{(IsScale ? "weight_scale_inv" : "weight")}");

    /// <summary>This matrix's scale tensor name.</summary>
    public ExpertTensorName Scale => this with { IsScale = true };

    /// <summary>Parses a routed-expert tensor name; <see langword="false"/> for any other tensor.</summary>
    public static bool TryParse(string name, out ExpertTensorName parsed)
    {
        Match m = Pattern().Match(name ?? string.Empty);
        if (!m.Success || !int.TryParse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture, out int layer)
            || !int.TryParse(m.Groups[2].ValueSpan, CultureInfo.InvariantCulture, out int expert))
        {
            parsed = default;
            return false;
        }

        ExpertProjection projection = m.Groups[3].Value switch
        {
            "gate" => ExpertProjection.Gate,
            "up" => ExpertProjection.Up,
            "down" => ExpertProjection.Down,
            _ => ExpertProjection.GateUp,
        };
        parsed = new ExpertTensorName(layer, expert, projection, m.Groups[4].Value == "weight_scale_inv");
        return true;
    }

    private static string ProjectionName(ExpertProjection projection) => projection switch
    {
        ExpertProjection.Gate => "gate_proj",
        ExpertProjection.Up => "up_proj",
        ExpertProjection.Down => "down_proj",
        _ => "gate_up_proj",
    };

    [GeneratedRegex(@"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down|gate_up)_proj\.(weight|weight_scale_inv)$", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
