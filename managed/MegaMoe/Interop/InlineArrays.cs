using System.Runtime.CompilerServices;

namespace MegaMoe.Interop;

/// <summary><c>int64_t[MEGAMOE_MAX_RANK]</c>: the shape and strides of <see cref="MegaMoeTensor"/>.</summary>
[InlineArray(MegaMoeTensor.MaxRank)]
internal struct Int64x4
{
    private long _element0;
}

/// <summary><c>char name[256]</c> of <see cref="MegaMoeDeviceInfo"/>: NUL-terminated UTF-8.</summary>
[InlineArray(256)]
internal struct DeviceName
{
    private byte _element0;
}
