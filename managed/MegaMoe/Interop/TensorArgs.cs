using System.Runtime.CompilerServices;

namespace MegaMoe.Interop;

/// <summary>Reads the descriptors of tensor arguments (hold a <see cref="TensorLease"/> on them for the call).</summary>
internal static class TensorArgs
{
    /// <summary>The descriptor of a required tensor argument.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="tensor"/> is null.</exception>
    public static MegaMoeTensor Required(
        DeviceTensor? tensor, [CallerArgumentExpression(nameof(tensor))] string? parameterName = null)
    {
        ArgumentNullException.ThrowIfNull(tensor, parameterName);
        return tensor.Descriptor;
    }

    /// <summary>The descriptor of an optional tensor argument; pass <c>null</c> instead of its address when the tensor is.</summary>
    public static MegaMoeTensor Optional(DeviceTensor? tensor) => tensor?.Descriptor ?? default;
}
