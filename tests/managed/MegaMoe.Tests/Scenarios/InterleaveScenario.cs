using System.Runtime.InteropServices;
using MegaMoe.Tests.Support;

namespace MegaMoe.Tests.Scenarios;

/// <summary>Gate/up interleave of w13 [(E,) 2I, H] as raw 1-, 2- or 4-byte elements.</summary>
public sealed record InterleaveScenario(int Experts, int Intermediate, int Hidden, DataType DataType, byte[] Bytes)
{
    private long[] Shape => Experts > 0 ? [Experts, 2 * Intermediate, Hidden] : [2 * Intermediate, Hidden];

    private int RowBytes => Hidden * DataType.SizeInBytes();

    /// <summary>Draws random bytes (any bit pattern: the transform only moves rows). Experts 0 means a 2-D tensor.</summary>
    public static InterleaveScenario Random(Random random, int experts, int intermediate, int hidden, DataType dataType)
    {
        var bytes = new byte[Math.Max(experts, 1) * 2 * intermediate * hidden * dataType.SizeInBytes()];
        random.NextBytes(bytes);
        return new(experts, intermediate, hidden, dataType, bytes);
    }

    /// <summary>Runs the transform (or its inverse) on <paramref name="context"/>: the output bytes.</summary>
    public byte[] Run(MoeContext context, bool inverse)
    {
        using var scope = new DeviceScope(context);
        DeviceTensor w = scope.Allocate(DataType, Shape);
        DeviceTensor output = scope.Allocate(DataType, Shape);
        Upload(w, Bytes);
        context.InterleaveGateUp(w, output, inverse);
        return Download(output);
    }

    /// <summary>
    /// The expected bytes: output row r of each expert is gate row 8c + i for r = 16c + i (i &lt; 8) and up row
    /// 8c + i - 8 otherwise; the inverse applies the opposite map.
    /// </summary>
    public byte[] Reference(bool inverse)
    {
        var output = new byte[Bytes.Length];
        int rows = 2 * Intermediate;
        for (int e = 0; e < Math.Max(Experts, 1); e++)
        {
            for (int r = 0; r < rows; r++)
            {
                int chunk = r / 16, within = r % 16;
                int canonical = within < 8 ? (8 * chunk) + within : Intermediate + (8 * chunk) + within - 8;
                (int from, int to) = inverse ? (r, canonical) : (canonical, r);
                Bytes.AsSpan(((e * rows) + from) * RowBytes, RowBytes).CopyTo(output.AsSpan(((e * rows) + to) * RowBytes));
            }
        }

        return output;
    }

    private void Upload(DeviceTensor tensor, byte[] bytes)
    {
        switch (DataType)
        {
            case DataType.Float8E4M3:
                tensor.CopyFrom<byte>(bytes);
                break;
            case DataType.BFloat16:
                tensor.CopyFrom<ushort>(MemoryMarshal.Cast<byte, ushort>(bytes));
                break;
            default:
                tensor.CopyFrom<float>(MemoryMarshal.Cast<byte, float>(bytes));
                break;
        }
    }

    private byte[] Download(DeviceTensor tensor) => DataType switch
    {
        DataType.Float8E4M3 => tensor.ToArray<byte>(),
        DataType.BFloat16 => MemoryMarshal.AsBytes(tensor.ToArray<ushort>().AsSpan()).ToArray(),
        _ => MemoryMarshal.AsBytes(tensor.ToArray<float>().AsSpan()).ToArray(),
    };
}
