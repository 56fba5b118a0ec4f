namespace MegaMoe;

/// <summary>Options of a <see cref="RoutedGemmPlan"/> (<c>MEGAMOE_PLAN_*</c>).</summary>
[Flags]
public enum RoutedPlanOptions
{
    /// <summary>One tile shape for every expert.</summary>
    None = 0,

    /// <summary>Choose the tile shape per expert from its token count, on the device (CUDA backend).</summary>
    ExpertSpecialization = 1,
}
