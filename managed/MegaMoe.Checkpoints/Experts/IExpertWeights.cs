namespace MegaMoe.Checkpoints.Experts;

/// <summary>
/// The FP8 routed-expert weights of one MoE layer, read one expert at a time so that a caller never needs more than one
/// expert's weights in host memory: <c>w13 [2I, H]</c> (gate rows then up rows, or gate/up interleaved by 8 rows when
/// <see cref="W13Interleaved"/>) and <c>w2 [H, I]</c> as E4M3 codes, each with float32 128x128 block scales (the
/// dequantization multipliers, DeepSeek-V3's <c>weight_scale_inv</c>; always in canonical gate-then-up row order).
/// </summary>
public interface IExpertWeights
{
    /// <summary>E, the number of routed experts.</summary>
    int Experts { get; }

    /// <summary>H, the hidden size.</summary>
    long Hidden { get; }

    /// <summary>I, the intermediate size of one expert.</summary>
    long Intermediate { get; }

    /// <summary>Whether the w13 rows are gate/up interleaved (<c>megamoe_interleave_gate_up</c>).</summary>
    bool W13Interleaved { get; }

    /// <summary>Writes expert <paramref name="expert"/>'s w13 codes, 2I * H bytes.</summary>
    void ReadW13(int expert, Span<byte> destination);

    /// <summary>Writes expert <paramref name="expert"/>'s w2 codes, H * I bytes.</summary>
    void ReadW2(int expert, Span<byte> destination);

    /// <summary>Writes expert <paramref name="expert"/>'s w13 scales, [ceil(2I/128), ceil(H/128)].</summary>
    void ReadW13Scales(int expert, Span<float> destination);

    /// <summary>Writes expert <paramref name="expert"/>'s w2 scales, [ceil(H/128), ceil(I/128)].</summary>
    void ReadW2Scales(int expert, Span<float> destination);
}
