namespace MegaMoe.Checkpoints.Safetensors;

/// <summary>Names and element sizes of <see cref="SafetensorsDType"/>.</summary>
public static class SafetensorsDTypes
{
    private static readonly (SafetensorsDType DType, string Name, int Size)[] Table =
    [
        (SafetensorsDType.Bool, "BOOL", 1), (SafetensorsDType.U8, "U8", 1), (SafetensorsDType.I8, "I8", 1),
        (SafetensorsDType.F8E5M2, "F8_E5M2", 1), (SafetensorsDType.F8E4M3, "F8_E4M3", 1),
        (SafetensorsDType.I16, "I16", 2), (SafetensorsDType.U16, "U16", 2), (SafetensorsDType.F16, "F16", 2),
        (SafetensorsDType.BF16, "BF16", 2), (SafetensorsDType.I32, "I32", 4), (SafetensorsDType.U32, "U32", 4),
        (SafetensorsDType.F32, "F32", 4), (SafetensorsDType.F64, "F64", 8), (SafetensorsDType.I64, "I64", 8),
        (SafetensorsDType.U64, "U64", 8),
    ];

    /// <summary>Every name the reader accepts, for error messages.</summary>
    public static string KnownNames => string.Join(", ", Table.Select(t => t.Name));

    /// <summary>Bytes per element.</summary>
    public static int SizeInBytes(this SafetensorsDType dtype) => Entry(dtype).Size;

    /// <summary>The name the header uses ("BF16").</summary>
    public static string ToHeaderName(this SafetensorsDType dtype) => Entry(dtype).Name;

    /// <summary>Parses a header dtype name (case-sensitive, as the format defines them).</summary>
    public static bool TryParse(string name, out SafetensorsDType dtype)
    {
        foreach ((SafetensorsDType d, string n, _) in Table)
        {
            if (n == name)
            {
                dtype = d;
                return true;
            }
        }

        dtype = default;
        return false;
    }

    private static (SafetensorsDType DType, string Name, int Size) Entry(SafetensorsDType dtype) =>
        Array.Find(Table, t => t.DType == dtype) is { Name: not null } entry
            ? entry
            : throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Not a safetensors dtype.");
}
