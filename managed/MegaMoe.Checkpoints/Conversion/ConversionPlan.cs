using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Safetensors;
using MegaMoe.Checkpoints.Sharding;

namespace MegaMoe.Checkpoints.Conversion;

/// <summary>One output tensor (or weight + scale pair) and where its data comes from.</summary>
/// <param name="Kind">What to do.</param>
/// <param name="Output">The output tensor (the weight, for a pair).</param>
/// <param name="Sources">Input tensors, in row order (gate then up for a fused matrix).</param>
/// <param name="ScaleOutput">The scale tensor written after the weight, for quantized and fused matrices.</param>
internal sealed record PlannedTensor(
    PlannedTensorKind Kind, SafetensorsTensorSpec Output, IReadOnlyList<string> Sources, SafetensorsTensorSpec? ScaleOutput)
{
    public IEnumerable<SafetensorsTensorSpec> Outputs => ScaleOutput is null ? [Output] : [Output, ScaleOutput];
}

/// <summary>The three things a conversion does to a tensor.</summary>
internal enum PlannedTensorKind
{
    /// <summary>Copied unchanged.</summary>
    Copy,

    /// <summary>A BF16/FP32 expert matrix (or gate/up pair) quantized to FP8 with block scales.</summary>
    Quantize,

    /// <summary>An FP8 gate/up pair put together and interleaved; codes and scales unchanged.</summary>
    FuseFp8,
}

/// <summary>
/// Decides, before anything is written, what every output shard holds: each input shard becomes an output shard of
/// the same name, with routed-expert matrices quantized (or fused) and every other tensor copied. Planning first means
/// every header can be written before its data, and unsupported inputs are refused before any work.
/// </summary>
internal static class ConversionPlan
{
    public static List<(SafetensorsFile Shard, List<PlannedTensor> Tensors)> Create(Checkpoint checkpoint, ConversionOptions options)
    {
        var plan = new List<(SafetensorsFile, List<PlannedTensor>)>();
        foreach (SafetensorsFile shard in checkpoint.Shards)
        {
            var tensors = new List<PlannedTensor>();
            foreach (SafetensorsTensorInfo tensor in shard.Tensors)
            {
                // With an index, a shard's tensors that the index does not map are not part of the checkpoint.
                if (!checkpoint.Contains(tensor.Name) || !ReferenceEquals(checkpoint.ShardOf(tensor.Name), shard))
                {
                    continue;
                }

                if (Plan(checkpoint, tensor, options) is { } planned)
                {
                    tensors.Add(planned);
                }
            }

            plan.Add((shard, tensors));
        }

        return plan;
    }

    private static PlannedTensor? Plan(Checkpoint checkpoint, SafetensorsTensorInfo tensor, ConversionOptions options)
    {
        if (!ExpertTensorName.TryParse(tensor.Name, out ExpertTensorName name) || name.Projection == ExpertProjection.GateUp)
        {
            return Copy(tensor);
        }

        bool fuse = options.Interleave && name.Projection is ExpertProjection.Gate or ExpertProjection.Up;
        if (name.IsScale)
        {
            // Scales of FP8 gate/up matrices travel with their fused weight; a scale of a BF16 weight is contradictory.
            SafetensorsTensorInfo weight = checkpoint.Contains((name with { IsScale = false }).ToString())
                ? checkpoint.GetInfo((name with { IsScale = false }).ToString())
                : throw new InvalidDataException($"'{tensor.Name}' has no weight '{name with { IsScale = false }}'.");
            if (weight.DType != SafetensorsDType.F8E4M3)
            {
                throw new InvalidDataException($"'{tensor.Name}' is a block scale of '{weight.Name}', which is {weight.DType.ToHeaderName()}, not FP8.");
            }

            return fuse ? null : Copy(tensor);
        }

        if (name.Projection == ExpertProjection.Up && fuse)
        {
            Require(checkpoint, name with { Projection = ExpertProjection.Gate }, tensor);
            return null;
        }

        IReadOnlyList<string> sources = fuse
            ? [tensor.Name, Require(checkpoint, name with { Projection = ExpertProjection.Up }, tensor).Name]
            : [tensor.Name];
        if (tensor.Shape.Count != 2)
        {
            throw new InvalidDataException($"'{tensor.Name}' is {tensor.Describe()}; an expert weight must be a matrix.");
        }

        long rows = sources.Count * tensor.Shape[0], columns = tensor.Shape[1];
        string output = fuse ? (name with { Projection = ExpertProjection.GateUp }).ToString() : tensor.Name;
        var weightSpec = new SafetensorsTensorSpec(output, SafetensorsDType.F8E4M3, [rows, columns]);
        var scaleSpec = new SafetensorsTensorSpec(
            output + "_scale_inv", SafetensorsDType.F32, [ExpertWeightsExtensions.Blocks(rows), ExpertWeightsExtensions.Blocks(columns)]);
        return tensor.DType switch
        {
            SafetensorsDType.BF16 or SafetensorsDType.F32 => new PlannedTensor(PlannedTensorKind.Quantize, weightSpec, sources, scaleSpec),
            SafetensorsDType.F8E4M3 when fuse => new PlannedTensor(PlannedTensorKind.FuseFp8, weightSpec, sources, scaleSpec),
            SafetensorsDType.F8E4M3 => Copy(tensor),
            _ => throw new InvalidDataException($"'{tensor.Name}' is {tensor.DType.ToHeaderName()}; expert weights must be BF16, F32 or F8_E4M3."),
        };
    }

    // The partner of a gate/up matrix: same dtype and shape, or the pair cannot be fused.
    private static SafetensorsTensorInfo Require(Checkpoint checkpoint, ExpertTensorName partner, SafetensorsTensorInfo tensor)
    {
        string name = partner.ToString();
        if (!checkpoint.Contains(name))
        {
            throw new InvalidDataException($"'{tensor.Name}' has no partner '{name}' to fuse with (--interleave needs both).");
        }

        SafetensorsTensorInfo info = checkpoint.GetInfo(name);
        if (info.DType != tensor.DType || !info.Shape.SequenceEqual(tensor.Shape))
        {
            throw new InvalidDataException($"'{name}' is {info.Describe()} but '{tensor.Name}' is {tensor.Describe()}; they cannot be fused.");
        }

        return info;
    }

    private static PlannedTensor Copy(SafetensorsTensorInfo tensor) =>
        new(PlannedTensorKind.Copy, new SafetensorsTensorSpec(tensor.Name, tensor.DType, tensor.Shape), [tensor.Name], null);
}
