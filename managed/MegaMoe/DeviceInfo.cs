namespace MegaMoe;

/// <summary>What a <see cref="MoeContext"/> runs on (<c>megamoe_device_info_t</c>).</summary>
/// <param name="Backend">The backend in use: <see cref="Backend.Cpu"/> or <see cref="Backend.Cuda"/>, never <see cref="Backend.Best"/>.</param>
/// <param name="DeviceId">The CUDA ordinal; 0 for the CPU.</param>
/// <param name="Name">The device (GPU or CPU model) name.</param>
/// <param name="ComputeCapability">The CUDA compute capability (9.0 for Hopper); 0.0 on the CPU.</param>
/// <param name="MultiprocessorCount">Streaming multiprocessors, or worker threads on the CPU.</param>
/// <param name="DriverVersion">The CUDA driver version (e.g. 13000); 0 on the CPU.</param>
/// <param name="RuntimeVersion">The CUDA runtime the library links; 0 on the CPU.</param>
/// <param name="TotalMemoryBytes">Device memory, or host memory on the CPU.</param>
/// <param name="L2CacheBytes">L2 cache size.</param>
public sealed record DeviceInfo(
    Backend Backend,
    int DeviceId,
    string Name,
    Version ComputeCapability,
    int MultiprocessorCount,
    int DriverVersion,
    int RuntimeVersion,
    long TotalMemoryBytes,
    long L2CacheBytes);
