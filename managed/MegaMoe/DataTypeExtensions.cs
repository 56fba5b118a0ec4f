namespace MegaMoe;

/// <summary>Sizes and .NET element types of <see cref="DataType"/> values.</summary>
public static class DataTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    /// <param name="dataType">The element type.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dataType"/> is not a defined value.</exception>
    public static int SizeInBytes(this DataType dataType) => dataType switch
    {
        DataType.Float8E4M3 => 1,
        DataType.BFloat16 => 2,
        DataType.Float32 => 4,
        DataType.Int32 => 4,
        DataType.Int64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "Not a MegaMoe data type."),
    };

    /// <summary>
    /// Whether <typeparamref name="T"/> may stand for elements of <paramref name="dataType"/> in host copies:
    /// the matching .NET type, or the raw bit pattern (<see cref="byte"/> for FP8, <see cref="ushort"/> for BF16).
    /// </summary>
    /// <typeparam name="T">A host element type.</typeparam>
    /// <param name="dataType">The element type of a tensor.</param>
    public static bool IsElementType<T>(this DataType dataType)
        where T : unmanaged => dataType switch
        {
            DataType.Float8E4M3 => typeof(T) == typeof(Float8E4M3) || typeof(T) == typeof(byte),
            DataType.BFloat16 => typeof(T) == typeof(BFloat16) || typeof(T) == typeof(ushort),
            DataType.Float32 => typeof(T) == typeof(float),
            DataType.Int32 => typeof(T) == typeof(int),
            DataType.Int64 => typeof(T) == typeof(long),
            _ => false,
        };
}
