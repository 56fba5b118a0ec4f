namespace MegaMoe;

/// <summary>Options of the quantization operations (<c>MEGAMOE_QUANT_*</c>).</summary>
[Flags]
public enum QuantizationOptions
{
    /// <summary>Scales are <c>max(amax, 1e-4) / 448</c>.</summary>
    None = 0,

    /// <summary>Round each scale up to a power of two ("UE8M0"), as DeepGEMM's UE8M0 layouts expect.</summary>
    Ue8m0Scales = 1,
}
