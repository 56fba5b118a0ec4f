namespace MegaMoe.Checkpoints.Conversion;

/// <summary>How <see cref="CheckpointConverter"/> converts a checkpoint.</summary>
public sealed record ConversionOptions
{
    /// <summary>
    /// Fuse each expert's gate and up matrices into one <c>gate_up_proj</c> tensor with rows interleaved by 8 (the
    /// layout <see cref="MoeLayerOptions.W13Interleaved"/> takes); its scales stay in gate-then-up order.
    /// </summary>
    public bool Interleave { get; init; }

    /// <summary>Scale rounding of the quantization (e.g. UE8M0 power-of-two scales).</summary>
    public QuantizationOptions Quantization { get; init; }

    /// <summary>Replace files that already exist in the output directory.</summary>
    public bool Overwrite { get; init; }
}

/// <summary>Where a conversion is: the tensor being written and the input bytes done so far.</summary>
/// <param name="Shard">The output file being written.</param>
/// <param name="Tensor">The output tensor being written.</param>
/// <param name="BytesDone">Input bytes processed.</param>
/// <param name="BytesTotal">Input bytes in all.</param>
public sealed record ConversionProgress(string Shard, string Tensor, long BytesDone, long BytesTotal);

/// <summary>What a conversion did.</summary>
/// <param name="Files">The files written (shards, then the index if any), full paths.</param>
/// <param name="TensorsQuantized">Expert matrices quantized from BF16/FP32 (a fused gate/up counts once).</param>
/// <param name="TensorsFused">FP8 gate/up pairs fused and interleaved without requantization.</param>
/// <param name="TensorsCopied">Tensors copied unchanged.</param>
/// <param name="InputBytes">Tensor bytes read.</param>
/// <param name="OutputBytes">Tensor bytes written.</param>
public sealed record ConversionResult(
    IReadOnlyList<string> Files, int TensorsQuantized, int TensorsFused, int TensorsCopied, long InputBytes, long OutputBytes);
