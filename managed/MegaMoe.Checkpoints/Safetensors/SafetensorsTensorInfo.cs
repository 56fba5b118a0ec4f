namespace MegaMoe.Checkpoints.Safetensors;

/// <summary>One tensor of a safetensors file, as its (validated) header describes it.</summary>
/// <param name="Name">The tensor's key in the header.</param>
/// <param name="DType">Its element type.</param>
/// <param name="Shape">Its dimensions (empty for a scalar).</param>
/// <param name="Offset">Start of its bytes, relative to the end of the header (the format's <c>data_offsets[0]</c>).</param>
/// <param name="ByteLength">Its size in bytes: the product of <paramref name="Shape"/> times the element size.</param>
public sealed record SafetensorsTensorInfo(
    string Name, SafetensorsDType DType, IReadOnlyList<long> Shape, long Offset, long ByteLength)
{
    /// <summary>Number of elements (1 for a scalar).</summary>
    public long ElementCount => ByteLength / DType.SizeInBytes();

    /// <summary>"BF16[128, 256]".</summary>
    public string Describe() => $"{DType.ToHeaderName()}[{string.Join(", ", Shape)}]";
}
