namespace MegaMoe.Checkpoints.Safetensors;

/// <summary>A tensor to be written by <see cref="SafetensorsWriter"/>: its name, type and shape, declared up front.</summary>
/// <param name="Name">The key in the header; unique and not "__metadata__".</param>
/// <param name="DType">The element type.</param>
/// <param name="Shape">The dimensions, each non-negative.</param>
public sealed record SafetensorsTensorSpec(string Name, SafetensorsDType DType, IReadOnlyList<long> Shape)
{
    /// <summary>Bytes of data: product of the shape times the element size.</summary>
    public long ByteLength => Shape.Aggregate((long)DType.SizeInBytes(), (size, d) => checked(size * d));
}
