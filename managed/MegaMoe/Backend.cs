namespace MegaMoe;

/// <summary>The compute backend of a <see cref="MoeContext"/> (<c>megamoe_backend_t</c>).</summary>
public enum Backend
{
    /// <summary>CUDA when it is usable on this machine, otherwise the CPU.</summary>
    Best = 0,

    /// <summary>The exact CPU reference backend.</summary>
    Cpu = 1,

    /// <summary>The SM90 (Hopper) CUDA backend.</summary>
    Cuda = 2,
}
