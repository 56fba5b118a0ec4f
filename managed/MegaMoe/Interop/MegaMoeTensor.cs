using System.Runtime.InteropServices;

namespace MegaMoe.Interop;

/// <summary>
/// <c>megamoe_tensor_t</c>, field for field: a DLPack-like view of memory the caller owns. The native side
/// reads it during the call and never keeps it.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MegaMoeTensor
{
    /// <summary><c>MEGAMOE_MAX_RANK</c>.</summary>
    public const int MaxRank = 4;

    public nint Data;
    public int DeviceType;
    public int DeviceId;
    public int Dtype;
    public int Rank;
    public Int64x4 Shape;
    public Int64x4 Strides;
}
