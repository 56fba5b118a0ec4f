using System.Runtime.InteropServices;
using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Safetensors;
using MegaMoe.Checkpoints.Sharding;
using MegaMoe.Checkpoints.Synthetic;

namespace MegaMoe.Checkpoints.Tests.Support;

/// <summary>
/// Small checkpoints in the DeepSeek-V3 layout: routed experts of one layer (FP8 with F32 scales, or BF16 for
/// conversion), plus tensors that are not routed experts (an embedding, a shared expert, a router) that loaders must
/// ignore and conversion must copy. With shards > 1 the experts are spread over files and an index json maps them.
/// </summary>
internal static class TestCheckpoints
{
    public const int Layer = 3, Experts = 4, TopK = 2, Hidden = 256, Intermediate = 128;

    /// <summary>The FP8 weights <see cref="WriteFp8"/> stores.</summary>
    public static SyntheticMoe Fp8Source(ulong seed = 7) => new(Experts, Hidden, Intermediate, seed);

    public static void WriteFp8(string directory, int shards = 1, ulong seed = 7)
    {
        SyntheticMoe source = Fp8Source(seed);
        var tensors = new List<(string Name, SafetensorsDType DType, long[] Shape, byte[] Data)>();
        for (int e = 0; e < Experts; e++)
        {
            var w13 = new byte[source.W13ExpertBytes()];
            source.ReadW13(e, w13);
            var s13 = new float[2 * 2];
            source.ReadW13Scales(e, s13);
            var w2 = new byte[source.W2ExpertBytes()];
            source.ReadW2(e, w2);
            var s2 = new float[2 * 1];
            source.ReadW2Scales(e, s2);
            int half = w13.Length / 2;
            Add(tensors, new ExpertTensorName(Layer, e, ExpertProjection.Gate), w13[..half], [Intermediate, Hidden], s13[..2], [1, 2]);
            Add(tensors, new ExpertTensorName(Layer, e, ExpertProjection.Up), w13[half..], [Intermediate, Hidden], s13[2..], [1, 2]);
            Add(tensors, new ExpertTensorName(Layer, e, ExpertProjection.Down), w2, [Hidden, Intermediate], s2, [2, 1]);
        }

        WriteShards(directory, WithOthers(tensors), shards);
    }

    /// <summary>BF16 experts of N(0, 0.05) values; returns them as float32 by tensor name.</summary>
    public static Dictionary<string, float[]> WriteBf16(string directory, int shards = 1, ulong seed = 11)
    {
        var random = new Random((int)seed);
        var values = new Dictionary<string, float[]>();
        var tensors = new List<(string, SafetensorsDType, long[], byte[])>();
        for (int e = 0; e < Experts; e++)
        {
            foreach ((ExpertProjection p, long rows, long columns) in new[] { (ExpertProjection.Gate, (long)Intermediate, (long)Hidden), (ExpertProjection.Up, Intermediate, Hidden), (ExpertProjection.Down, Hidden, Intermediate) })
            {
                string name = new ExpertTensorName(Layer, e, p).ToString();
                var bits = new ushort[rows * columns];
                var floats = new float[bits.Length];
                for (int i = 0; i < bits.Length; i++)
                {
                    bits[i] = ((BFloat16)(float)(random.NextDouble() * 0.1 - 0.05)).RawValue;
                    floats[i] = (float)BFloat16.FromRawValue(bits[i]);
                }

                values[name] = floats;
                tensors.Add((name, SafetensorsDType.BF16, [rows, columns], MemoryMarshal.AsBytes(bits.AsSpan()).ToArray()));
            }
        }

        WriteShards(directory, WithOthers(tensors), shards);
        return values;
    }

    private static void Add(
        List<(string, SafetensorsDType, long[], byte[])> tensors, ExpertTensorName name, byte[] codes, long[] shape, float[] scales, long[] scaleShape)
    {
        tensors.Add((name.ToString(), SafetensorsDType.F8E4M3, shape, codes));
        tensors.Add((name.Scale.ToString(), SafetensorsDType.F32, scaleShape, MemoryMarshal.AsBytes(scales.AsSpan()).ToArray()));
    }

    // Tensors a real checkpoint has besides the routed experts; the loader must not mistake them for experts.
    private static List<(string, SafetensorsDType, long[], byte[])> WithOthers(List<(string, SafetensorsDType, long[], byte[])> experts) =>
    [
        ("model.embed_tokens.weight", SafetensorsDType.BF16, [8, 16], new byte[8 * 16 * 2]),
        ($"model.layers.{Layer}.mlp.gate.weight", SafetensorsDType.F32, [Experts, 16], new byte[Experts * 16 * 4]),
        ($"model.layers.{Layer}.mlp.shared_experts.gate_proj.weight", SafetensorsDType.BF16, [4, 16], new byte[4 * 16 * 2]),
        .. experts,
    ];

    private static void WriteShards(string directory, List<(string Name, SafetensorsDType DType, long[] Shape, byte[] Data)> tensors, int shards)
    {
        var weightMap = new Dictionary<string, string>();
        for (int s = 0; s < shards; s++)
        {
            string file = shards == 1 ? "model.safetensors" : $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            var mine = tensors.Where((_, i) => i % shards == s).ToList();
            using SafetensorsWriter writer = SafetensorsWriter.Create(
                Path.Combine(directory, file), mine.Select(t => new SafetensorsTensorSpec(t.Name, t.DType, t.Shape)).ToList(),
                new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var t in mine)
            {
                writer.WriteTensor(t.Name, t.Data);
                weightMap[t.Name] = file;
            }

            writer.Complete();
        }

        if (shards > 1)
        {
            new ShardIndex(weightMap, tensors.Sum(t => (long)t.Data.Length)).Write(Path.Combine(directory, ShardIndex.DefaultFileName));
        }
    }
}
