namespace MegaMoe;

/// <summary>
/// Shape and math of a <see cref="MoeLayer"/>: <c>y[t] = sum_j w[t,j] * RoutedScalingFactor * W2[e] .
/// act(W13[e] . x[t])</c> with <c>act(g, u) = g * sigmoid(alpha * g) * (u + beta)</c> and an optional clamp.
/// The defaults are DeepSeek's SwiGLU without clamp and without routed scaling.
/// </summary>
public sealed record MoeLayerOptions
{
    /// <summary>Experts E, 1 to 1024.</summary>
    public required int Experts { get; init; }

    /// <summary>Slots per token, 1 to 16.</summary>
    public required int TopK { get; init; }

    /// <summary>Hidden size H, a multiple of 128.</summary>
    public required long Hidden { get; init; }

    /// <summary>Expert intermediate size I, a multiple of 128.</summary>
    public required long Intermediate { get; init; }

    /// <summary>The largest token count T a forward may pass, at least 1; sizes the layer's workspace.</summary>
    public required long MaxTokens { get; init; }

    /// <summary>alpha of the activation: 1 for SwiGLU (DeepSeek), 1.702 for GPT-OSS.</summary>
    public float ActivationAlpha { get; init; } = 1f;

    /// <summary>beta of the activation: 0 for SwiGLU, 1 for GPT-OSS.</summary>
    public float ActivationBeta { get; init; }

    /// <summary>c &gt; 0 clamps gate &lt;= c and -c &lt;= up &lt;= c (DeepSeek-V4, GPT-OSS); 0 disables the clamp.</summary>
    public float ActivationClamp { get; init; }

    /// <summary>Multiplies every top-k weight: 2.5 for DeepSeek-V3, else 1.</summary>
    public float RoutedScalingFactor { get; init; } = 1f;

    /// <summary>w13 rows are already gate/up interleaved (<see cref="MoeContext.InterleaveGateUp"/>).</summary>
    public bool W13Interleaved { get; init; }

    /// <summary>
    /// Expert specialization of the up-projection on the CUDA backend: experts with at most 64 slots in a batch run
    /// narrower tiles, chosen per expert on the device. Ignored by the CPU backend.
    /// </summary>
    public bool ExpertSpecializationUp { get; init; }

    /// <summary>Expert specialization of the down-projection (see <see cref="ExpertSpecializationUp"/>).</summary>
    public bool ExpertSpecializationDown { get; init; }
}
