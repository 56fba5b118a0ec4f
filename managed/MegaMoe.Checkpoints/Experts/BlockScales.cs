using System.Runtime.InteropServices;
using MegaMoe.Checkpoints.Safetensors;

namespace MegaMoe.Checkpoints.Experts;

/// <summary>Reads block scales stored as F32 (DeepSeek-V3) or BF16 (some re-exports) into float32.</summary>
internal static class BlockScales
{
    public static void ToFloat32(SafetensorsDType dtype, ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        switch (dtype)
        {
            case SafetensorsDType.F32:
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination);
                break;
            case SafetensorsDType.BF16:
                // A BF16 value is the top half of a float32.
                ReadOnlySpan<ushort> bf16 = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (int i = 0; i < bf16.Length; i++)
                {
                    destination[i] = BitConverter.Int32BitsToSingle(bf16[i] << 16);
                }

                break;
            default:
                throw new InvalidDataException($"Block scales must be F32 or BF16, not {dtype.ToHeaderName()}.");
        }
    }
}
