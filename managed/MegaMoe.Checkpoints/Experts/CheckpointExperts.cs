using MegaMoe.Checkpoints.Safetensors;
using MegaMoe.Checkpoints.Sharding;

namespace MegaMoe.Checkpoints.Experts;

/// <summary>
/// The FP8 routed experts of one layer of a DeepSeek-V3-style checkpoint, found by name
/// (<see cref="ExpertTensorName"/>) across its shards. Everything is checked when loading (every expert present, FP8
/// weights, float32 or BF16 scales, consistent shapes), so reading an expert later cannot fail half-way through.
/// The checkpoint must stay open while this object is used.
/// </summary>
public sealed class CheckpointExperts : IExpertWeights
{
    private readonly Checkpoint _checkpoint;
    private readonly int _layer;

    private CheckpointExperts(Checkpoint checkpoint, int layer, int experts, long hidden, long intermediate, bool fused)
    {
        _checkpoint = checkpoint;
        _layer = layer;
        Experts = experts;
        Hidden = hidden;
        Intermediate = intermediate;
        W13Interleaved = fused;
    }

    /// <inheritdoc />
    public int Experts { get; }

    /// <inheritdoc />
    public long Hidden { get; }

    /// <inheritdoc />
    public long Intermediate { get; }

    /// <inheritdoc />
    public bool W13Interleaved { get; }

    /// <summary>Finds and checks the routed experts of layer <paramref name="layer"/>.</summary>
    /// <exception cref="InvalidDataException">The layer has no experts, or they are incomplete or not FP8; the message says which tensor.</exception>
    public static CheckpointExperts Load(Checkpoint checkpoint, int layer)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var names = checkpoint.TensorNames
            .Select(n => ExpertTensorName.TryParse(n, out ExpertTensorName parsed) ? parsed : (ExpertTensorName?)null)
            .OfType<ExpertTensorName>()
            .ToList();
        var ofLayer = names.Where(n => n.Layer == layer).ToList();
        if (ofLayer.Count == 0)
        {
            int[] layers = names.Select(n => n.Layer).Distinct().Order().ToArray();
            throw new InvalidDataException(
                $"{checkpoint.Path}: layer {layer} has no routed experts (no 'model.layers.{layer}.mlp.experts.*' tensors); " +
                (layers.Length == 0 ? "the checkpoint has no routed-expert tensors at all." : $"layers with experts: {string.Join(", ", layers)}."));
        }

        int experts = ofLayer.Max(n => n.Expert) + 1;
        bool fused = ofLayer.Any(n => n.Projection == ExpertProjection.GateUp);
        ExpertProjection[] needed = fused
            ? [ExpertProjection.GateUp, ExpertProjection.Down]
            : [ExpertProjection.Gate, ExpertProjection.Up, ExpertProjection.Down];
        if (fused && ofLayer.Any(n => n.Projection is ExpertProjection.Gate or ExpertProjection.Up))
        {
            ExpertTensorName stray = ofLayer.First(n => n.Projection is ExpertProjection.Gate or ExpertProjection.Up);
            throw new InvalidDataException($"{checkpoint.Path}: layer {layer} mixes fused gate_up_proj tensors with separate ones ('{stray}').");
        }

        var first = new ExpertTensorName(layer, 0, needed[0]);
        if (!checkpoint.Contains(first.ToString()))
        {
            throw new InvalidDataException($"{checkpoint.Path}: '{first}' is missing (experts must be numbered 0 to {experts - 1}).");
        }

        IReadOnlyList<long> firstShape = checkpoint.GetInfo(first.ToString()).Shape;
        if (firstShape.Count != 2)
        {
            throw new InvalidDataException($"{checkpoint.Path}: '{first}' has shape [{string.Join(", ", firstShape)}]; expected a matrix.");
        }

        long intermediate = fused ? firstShape[0] / 2 : firstShape[0], hidden = firstShape[1];
        if (hidden % 128 != 0 || intermediate % 128 != 0 || hidden == 0 || intermediate == 0)
        {
            throw new InvalidDataException(
                $"{checkpoint.Path}: layer {layer} has H={hidden}, I={intermediate}; the MoE layer needs both to be positive multiples of 128.");
        }

        for (int expert = 0; expert < experts; expert++)
        {
            foreach (ExpertProjection projection in needed)
            {
                var name = new ExpertTensorName(layer, expert, projection);
                (long rows, long columns) = projection switch
                {
                    ExpertProjection.GateUp => (2 * intermediate, hidden),
                    ExpertProjection.Down => (hidden, intermediate),
                    _ => (intermediate, hidden),
                };
                CheckMatrix(checkpoint, name, rows, columns);
            }
        }

        if (fused)
        {
            string gateUp = new ExpertTensorName(layer, 0, ExpertProjection.GateUp).ToString();
            SafetensorsFile shard = checkpoint.ShardOf(gateUp);
            if (shard.Metadata.GetValueOrDefault(ExpertTensorName.W13LayoutMetadataKey) != ExpertTensorName.Interleave8Layout)
            {
                throw new InvalidDataException(
                    $"{shard.Path}: has fused '{gateUp}' but no '{ExpertTensorName.W13LayoutMetadataKey}: {ExpertTensorName.Interleave8Layout}' metadata, so the order of its gate and up rows is unknown.");
            }
        }

        return new CheckpointExperts(checkpoint, layer, experts, hidden, intermediate, fused);
    }

    /// <inheritdoc />
    public void ReadW13(int expert, Span<byte> destination)
    {
        if (W13Interleaved)
        {
            Bytes(expert, ExpertProjection.GateUp, false).CopyTo(destination);
            return;
        }

        ReadOnlySpan<byte> gate = Bytes(expert, ExpertProjection.Gate, false);
        gate.CopyTo(destination);
        Bytes(expert, ExpertProjection.Up, false).CopyTo(destination[gate.Length..]);
    }

    /// <inheritdoc />
    public void ReadW2(int expert, Span<byte> destination) => Bytes(expert, ExpertProjection.Down, false).CopyTo(destination);

    /// <inheritdoc />
    public void ReadW13Scales(int expert, Span<float> destination)
    {
        if (W13Interleaved)
        {
            ReadScales(expert, ExpertProjection.GateUp, destination);
            return;
        }

        int half = destination.Length / 2;
        ReadScales(expert, ExpertProjection.Gate, destination[..half]);
        ReadScales(expert, ExpertProjection.Up, destination[half..]);
    }

    /// <inheritdoc />
    public void ReadW2Scales(int expert, Span<float> destination) => ReadScales(expert, ExpertProjection.Down, destination);

    private static void CheckMatrix(Checkpoint checkpoint, ExpertTensorName name, long rows, long columns)
    {
        string weight = name.ToString(), scale = name.Scale.ToString();
        if (!checkpoint.Contains(weight))
        {
            throw new InvalidDataException($"{checkpoint.Path}: '{weight}' is missing.");
        }

        SafetensorsTensorInfo w = checkpoint.GetInfo(weight);
        if (w.DType != SafetensorsDType.F8E4M3)
        {
            throw new InvalidDataException(
                $"{checkpoint.Path}: '{weight}' is {w.DType.ToHeaderName()}, not F8_E4M3; convert the checkpoint first (megamoe convert).");
        }

        if (w.Shape.Count != 2 || w.Shape[0] != rows || w.Shape[1] != columns)
        {
            throw new InvalidDataException($"{checkpoint.Path}: '{weight}' is {w.Describe()}; expected F8_E4M3[{rows}, {columns}].");
        }

        if (!checkpoint.Contains(scale))
        {
            throw new InvalidDataException($"{checkpoint.Path}: '{scale}' (the block scales of '{weight}') is missing.");
        }

        SafetensorsTensorInfo s = checkpoint.GetInfo(scale);
        long scaleRows = ExpertWeightsExtensions.Blocks(rows), scaleColumns = ExpertWeightsExtensions.Blocks(columns);
        if (s.DType is not (SafetensorsDType.F32 or SafetensorsDType.BF16) || s.Shape.Count != 2 || s.Shape[0] != scaleRows
            || s.Shape[1] != scaleColumns)
        {
            throw new InvalidDataException(
                $"{checkpoint.Path}: '{scale}' is {s.Describe()}; expected F32[{scaleRows}, {scaleColumns}] (one scale per 128x128 block).");
        }
    }

    private ReadOnlySpan<byte> Bytes(int expert, ExpertProjection projection, bool scale)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(expert);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(expert, Experts);
        var name = new ExpertTensorName(_layer, expert, projection, scale);
        return _checkpoint.GetBytes(name.ToString());
    }

    private void ReadScales(int expert, ExpertProjection projection, Span<float> destination)
    {
        string name = new ExpertTensorName(_layer, expert, projection, true).ToString();
        BlockScales.ToFloat32(_checkpoint.GetInfo(name).DType, _checkpoint.GetBytes(name), destination);
    }
}
