using System.Diagnostics.CodeAnalysis;

namespace MegaMoe;

/// <summary>Element type of a <see cref="DeviceTensor"/> (<c>megamoe_dtype_t</c>).</summary>
[SuppressMessage(
    "Naming",
    "CA1720:Identifier contains type name",
    Justification = "The members name element formats, as in DLPack and ONNX Runtime; the type names are the point.")]
public enum DataType
{
    /// <summary>OCP FP8 E4M3FN (<see cref="Float8E4M3"/>): bias 7, largest finite 448, no infinities.</summary>
    Float8E4M3 = 1,

    /// <summary>bfloat16 (<see cref="MegaMoe.BFloat16"/>).</summary>
    BFloat16 = 2,

    /// <summary>IEEE binary32 (<see cref="float"/>).</summary>
    Float32 = 3,

    /// <summary>32-bit signed integer (<see cref="int"/>).</summary>
    Int32 = 4,

    /// <summary>64-bit signed integer (<see cref="long"/>).</summary>
    Int64 = 5,
}
