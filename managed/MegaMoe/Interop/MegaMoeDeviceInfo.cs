using System.Runtime.InteropServices;

namespace MegaMoe.Interop;

/// <summary><c>megamoe_device_info_t</c>, field for field.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MegaMoeDeviceInfo
{
    public uint StructSize;
    public int Backend;
    public int DeviceId;
    public int ComputeCapabilityMajor;
    public int ComputeCapabilityMinor;
    public int MultiprocessorCount;
    public int DriverVersion;
    public int RuntimeVersion;
    public long TotalMemoryBytes;
    public long L2CacheBytes;
    public DeviceName Name;
}
