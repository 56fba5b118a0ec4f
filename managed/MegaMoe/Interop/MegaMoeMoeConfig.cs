using System.Runtime.InteropServices;

namespace MegaMoe.Interop;

/// <summary><c>megamoe_moe_config_t</c>, field for field.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MegaMoeMoeConfig
{
    /// <summary><c>MEGAMOE_MOE_W13_INTERLEAVED</c>.</summary>
    public const uint W13InterleavedFlag = 1;

    /// <summary><c>MEGAMOE_MOE_EXPERT_SPECIALIZATION_UP</c>.</summary>
    public const uint ExpertSpecializationUpFlag = 2;

    /// <summary><c>MEGAMOE_MOE_EXPERT_SPECIALIZATION_DOWN</c>.</summary>
    public const uint ExpertSpecializationDownFlag = 4;

    public uint StructSize;
    public uint Flags;
    public int NumExperts;
    public int TopK;
    public long Hidden;
    public long Intermediate;
    public long MaxTokens;
    public float ActivationAlpha;
    public float ActivationBeta;
    public float ActivationClamp;
    public float RoutedScalingFactor;

    /// <summary><c>megamoe_progress_fn</c>: <c>int32_t (*)(void* user_data, int64_t done, int64_t total)</c>.</summary>
    public delegate* unmanaged[Cdecl]<nint, long, long, int> Progress;

    public nint ProgressUserData;
}
