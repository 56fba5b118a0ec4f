using System.Runtime.InteropServices;
using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Safetensors;
using MegaMoe.Checkpoints.Sharding;

namespace MegaMoe.Checkpoints.Conversion;

/// <summary>
/// Converts a checkpoint's BF16 (or FP32) routed-expert weights to FP8 E4M3 with float32 128x128 block scales
/// (<c>.weight_scale_inv</c>, as DeepSeek-V3 ships them), optionally fusing gate/up into the interleaved layout. It
/// streams: one matrix at a time is read from the memory-mapped input, quantized by the library on the context's
/// backend (so the result is bit-exact with <see cref="MoeContext.QuantizeWeights"/>) and appended to its output shard.
/// </summary>
public static class CheckpointConverter
{
    /// <summary>Converts <paramref name="input"/> (a checkpoint directory or file) into <paramref name="outputDirectory"/>.</summary>
    /// <param name="input">A checkpoint directory (with or without an index json) or one safetensors file.</param>
    /// <param name="outputDirectory">Created if needed; receives shards of the same file names (and the index).</param>
    /// <param name="context">Runs the quantization (any backend).</param>
    /// <param name="options">What to do.</param>
    /// <param name="progress">Receives progress after each tensor, on the calling thread.</param>
    /// <param name="cancellationToken">Stops between tensors; the shard being written is deleted.</param>
    /// <exception cref="InvalidDataException">An expert tensor cannot be converted; nothing was written.</exception>
    /// <exception cref="IOException">An output file exists and <see cref="ConversionOptions.Overwrite"/> is off, or the output is the input.</exception>
    public static ConversionResult Convert(
        string input, string outputDirectory, MoeContext context, ConversionOptions options,
        IProgress<ConversionProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(outputDirectory);
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        using Checkpoint checkpoint = Checkpoint.Open(input);
        var plan = ConversionPlan.Create(checkpoint, options);
        string[] outputs = plan.Select(p => Path.Combine(outputDirectory, Path.GetFileName(p.Shard.Path))).ToArray();
        CheckOutputs(checkpoint, outputDirectory, outputs, options);
        Directory.CreateDirectory(outputDirectory);

        var state = new State(context, options, checkpoint, progress, plan.Sum(p => p.Tensors.Sum(t => t.Sources.Sum(s => checkpoint.GetInfo(s).ByteLength))));
        var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < plan.Count; i++)
        {
            (SafetensorsFile shard, List<PlannedTensor> tensors) = plan[i];
            var metadata = new Dictionary<string, string>(shard.Metadata, StringComparer.Ordinal);
            if (options.Interleave)
            {
                metadata[ExpertTensorName.W13LayoutMetadataKey] = ExpertTensorName.Interleave8Layout;
            }

            using SafetensorsWriter writer = SafetensorsWriter.Create(outputs[i], tensors.SelectMany(t => t.Outputs).ToList(), metadata);
            foreach (PlannedTensor tensor in tensors)
            {
                cancellationToken.ThrowIfCancellationRequested();
                state.Write(writer, tensor, Path.GetFileName(outputs[i]));
                foreach (SafetensorsTensorSpec written in tensor.Outputs)
                {
                    weightMap[written.Name] = Path.GetFileName(outputs[i]);
                }
            }

            writer.Complete();
        }

        var files = outputs.ToList();
        if (checkpoint.IndexPath is not null)
        {
            string index = Path.Combine(outputDirectory, Path.GetFileName(checkpoint.IndexPath));
            new ShardIndex(weightMap, state.OutputBytes).Write(index);
            files.Add(index);
        }

        return new ConversionResult(files, state.Quantized, state.Fused, state.Copied, state.BytesDone, state.OutputBytes);
    }

    private static void CheckOutputs(Checkpoint checkpoint, string outputDirectory, string[] outputs, ConversionOptions options)
    {
        // Writing over a shard that is memory-mapped as input would corrupt the conversion as it reads.
        string inputDirectory = Path.GetFullPath(File.Exists(checkpoint.Path) ? Path.GetDirectoryName(Path.GetFullPath(checkpoint.Path))! : checkpoint.Path);
        if (string.Equals(Path.TrimEndingDirectorySeparator(inputDirectory), Path.TrimEndingDirectorySeparator(Path.GetFullPath(outputDirectory)), StringComparison.Ordinal))
        {
            throw new IOException($"{outputDirectory}: the output directory must not be the input's directory.");
        }

        if (!options.Overwrite && outputs.FirstOrDefault(File.Exists) is { } existing)
        {
            throw new IOException($"{existing} already exists (pass --force to replace it).");
        }
    }

    private sealed class State(
        MoeContext context, ConversionOptions options, Checkpoint checkpoint, IProgress<ConversionProgress>? progress, long bytesTotal)
    {
        public int Quantized { get; private set; }

        public int Fused { get; private set; }

        public int Copied { get; private set; }

        public long BytesDone { get; private set; }

        public long OutputBytes { get; private set; }

        public void Write(SafetensorsWriter writer, PlannedTensor tensor, string shardName)
        {
            switch (tensor.Kind)
            {
                case PlannedTensorKind.Copy:
                    writer.WriteTensor(tensor.Output.Name, checkpoint.GetBytes(tensor.Sources[0]));
                    Copied++;
                    break;
                case PlannedTensorKind.Quantize:
                    Quantize(writer, tensor);
                    Quantized++;
                    break;
                default:
                    FuseFp8(writer, tensor);
                    Fused++;
                    break;
            }

            BytesDone += tensor.Sources.Sum(s => checkpoint.GetInfo(s).ByteLength);
            OutputBytes += tensor.Outputs.Sum(o => o.ByteLength);
            progress?.Report(new ConversionProgress(shardName, tensor.Output.Name, BytesDone, bytesTotal));
        }

        private void Quantize(SafetensorsWriter writer, PlannedTensor tensor)
        {
            SafetensorsTensorInfo first = checkpoint.GetInfo(tensor.Sources[0]);
            DataType dataType = first.DType == SafetensorsDType.BF16 ? DataType.BFloat16 : DataType.Float32;
            long rows = tensor.Output.Shape[0], columns = tensor.Output.Shape[1];
            using DeviceTensor w = DeviceTensor.Allocate(context, dataType, rows, columns);
            long offset = 0;
            foreach (string source in tensor.Sources)
            {
                ReadOnlySpan<byte> bytes = checkpoint.GetBytes(source);
                if (dataType == DataType.BFloat16)
                {
                    w.CopyFrom(offset, MemoryMarshal.Cast<byte, ushort>(bytes));
                }
                else
                {
                    w.CopyFrom(offset, MemoryMarshal.Cast<byte, float>(bytes));
                }

                offset += bytes.Length / first.DType.SizeInBytes();
            }

            using DeviceTensor q = DeviceTensor.Allocate(context, DataType.Float8E4M3, rows, columns);
            using DeviceTensor scales = DeviceTensor.Allocate(context, DataType.Float32, tensor.ScaleOutput!.Shape[0], tensor.ScaleOutput.Shape[1]);
            context.QuantizeWeights(w, q, scales, options.Quantization);
            WriteFp8(writer, tensor, q, scales.ToArray<float>());
        }

        private void FuseFp8(SafetensorsWriter writer, PlannedTensor tensor)
        {
            long rows = tensor.Output.Shape[0], columns = tensor.Output.Shape[1];
            using DeviceTensor q = DeviceTensor.Allocate(context, DataType.Float8E4M3, rows, columns);
            var scales = new float[tensor.ScaleOutput!.ByteLength / sizeof(float)];
            long offset = 0;
            int scaleOffset = 0;
            foreach (string source in tensor.Sources)
            {
                ReadOnlySpan<byte> bytes = checkpoint.GetBytes(source);
                q.CopyFrom(offset, bytes);
                offset += bytes.Length;
                SafetensorsTensorInfo scale = checkpoint.GetInfo(source + "_scale_inv");
                BlockScales.ToFloat32(scale.DType, checkpoint.GetBytes(scale.Name), scales.AsSpan(scaleOffset, (int)scale.ElementCount));
                scaleOffset += (int)scale.ElementCount;
            }

            WriteFp8(writer, tensor, q, scales);
        }

        // Fused gate/up matrices are interleaved after quantization: the scales stay in canonical order, as the layer wants.
        private void WriteFp8(SafetensorsWriter writer, PlannedTensor tensor, DeviceTensor q, float[] scales)
        {
            if (tensor.Sources.Count == 2)
            {
                using DeviceTensor interleaved = DeviceTensor.Allocate(context, DataType.Float8E4M3, q.Shape);
                context.InterleaveGateUp(q, interleaved);
                writer.WriteTensor(tensor.Output.Name, interleaved.ToArray<byte>());
            }
            else
            {
                writer.WriteTensor(tensor.Output.Name, q.ToArray<byte>());
            }

            writer.WriteTensor<float>(tensor.ScaleOutput!.Name, scales);
        }
    }
}
