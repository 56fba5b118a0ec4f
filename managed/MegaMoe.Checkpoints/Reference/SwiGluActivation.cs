namespace MegaMoe.Checkpoints.Reference;

/// <summary>
/// The activation of the MoE layer (docs/NUMERICS.md section 4) in float64:
/// <c>act(g, u) = g * sigmoid(alpha * g) * (u + beta)</c>, after <c>g = min(g, c)</c> and <c>u = clamp(u, -c, c)</c>
/// when the clamp <c>c</c> is positive.
/// </summary>
/// <param name="Alpha">alpha: 1 for SwiGLU, 1.702 for GPT-OSS.</param>
/// <param name="Beta">beta: 0 for SwiGLU, 1 for GPT-OSS.</param>
/// <param name="Clamp">c; 0 disables the clamp.</param>
public sealed record SwiGluActivation(double Alpha, double Beta, double Clamp)
{
    /// <summary>SwiGLU as DeepSeek-V3 uses it: silu(gate) * up, no clamp (the defaults of <see cref="MoeLayerOptions"/>).</summary>
    public static SwiGluActivation DeepSeek { get; } = new(1, 0, 0);

    /// <summary>The activation a layer created with <paramref name="options"/> computes.</summary>
    public static SwiGluActivation Of(MoeLayerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new(options.ActivationAlpha, options.ActivationBeta, options.ActivationClamp);
    }

    /// <summary>act(<paramref name="gate"/>, <paramref name="up"/>).</summary>
    public double Apply(double gate, double up)
    {
        if (Clamp > 0)
        {
            gate = Math.Min(gate, Clamp);
            up = Math.Clamp(up, -Clamp, Clamp);
        }

        return gate / (1 + Math.Exp(-Alpha * gate)) * (up + Beta);
    }
}
