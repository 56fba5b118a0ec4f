using System.Runtime.InteropServices;

namespace MegaMoe.Interop;

/// <summary><c>megamoe_ep_config_t</c>, field for field.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MegaMoeEpConfig
{
    /// <summary><c>MEGAMOE_EP_RECORD_TIMINGS</c>.</summary>
    public const uint RecordTimingsFlag = 256;

    /// <summary><c>MEGAMOE_NCCL_UNIQUE_ID_BYTES</c>.</summary>
    public const int NcclUniqueIdBytes = 128;

    public uint StructSize;
    public uint Flags;
    public int NumExperts;
    public int TopK;
    public long Hidden;
    public long Intermediate;
    public long MaxTokensPerRank;
    public int ExpertBegin;
    public int NumLocalExperts;
    public float ActivationAlpha;
    public float ActivationBeta;
    public float ActivationClamp;
    public float RoutedScalingFactor;

    /// <summary><c>megamoe_progress_fn</c>: <c>int32_t (*)(void* user_data, int64_t done, int64_t total)</c>.</summary>
    public delegate* unmanaged[Cdecl]<nint, long, long, int> Progress;

    public nint ProgressUserData;
}
