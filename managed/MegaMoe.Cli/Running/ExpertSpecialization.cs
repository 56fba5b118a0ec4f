namespace MegaMoe.Cli.Running;

/// <summary>
/// --expert-specialization: which projections of the layer use expert specialization
/// (<see cref="MoeLayerOptions.ExpertSpecializationUp"/> / <see cref="MoeLayerOptions.ExpertSpecializationDown"/>,
/// MEGAMOE_MOE_EXPERT_SPECIALIZATION_UP / _DOWN). The CUDA backend honours them; the CPU backend accepts and ignores
/// them, so its output is the same for every value.
/// </summary>
internal enum ExpertSpecialization
{
    None,
    Up,
    Down,
    Both,
}

internal static class ExpertSpecializations
{
    /// <summary>The values --expert-specialization takes, as typed and as written to JSON.</summary>
    public static readonly string[] Names = ["none", "up", "down", "both"];

    public static ExpertSpecialization Parse(string? name) => name switch
    {
        null or "none" => ExpertSpecialization.None,
        "up" => ExpertSpecialization.Up,
        "down" => ExpertSpecialization.Down,
        "both" => ExpertSpecialization.Both,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "expected none, up, down or both"),
    };

    public static string Name(this ExpertSpecialization value) => Names[(int)value];

    /// <summary><paramref name="options"/> with the two flags set as <paramref name="value"/> says.</summary>
    public static MoeLayerOptions Apply(this ExpertSpecialization value, MoeLayerOptions options) => options with
    {
        ExpertSpecializationUp = value is ExpertSpecialization.Up or ExpertSpecialization.Both,
        ExpertSpecializationDown = value is ExpertSpecialization.Down or ExpertSpecialization.Both,
    };
}
