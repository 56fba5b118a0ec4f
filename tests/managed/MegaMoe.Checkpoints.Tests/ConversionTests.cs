using System.Runtime.InteropServices;
using FluentAssertions;
using MegaMoe.Checkpoints.Conversion;
using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Sharding;
using MegaMoe.Checkpoints.Synthetic;
using MegaMoe.Checkpoints.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Checkpoints.Tests;

public sealed class ConversionTests
{
    private MoeContext _context = null!;

    [OneTimeSetUp]
    public void CreateContext() => _context = MoeContext.Create(Backend.Cpu);

    [OneTimeTearDown]
    public void DisposeContext() => _context.Dispose();

    [Test]
    public void ExpertsBecomeWhatTheLibraryQuantizesAndEverythingElseIsCopied()
    {
        using var dir = new TempDirectory();
        string input = dir.Sub("bf16"), output = Path.Combine(dir.Path, "fp8");
        Dictionary<string, float[]> bf16 = TestCheckpoints.WriteBf16(input, shards: 2);
        var reports = new List<ConversionProgress>();

        ConversionResult result = CheckpointConverter.Convert(input, output, _context, new ConversionOptions(), new Inline(reports.Add));

        result.TensorsQuantized.Should().Be(3 * TestCheckpoints.Experts);
        result.TensorsCopied.Should().Be(3);
        result.Files.Select(Path.GetFileName).Should().BeEquivalentTo("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", ShardIndex.DefaultFileName);
        reports.Should().NotBeEmpty();
        reports[^1].BytesDone.Should().Be(reports[^1].BytesTotal);

        using Checkpoint converted = Checkpoint.Open(output);
        using Checkpoint original = Checkpoint.Open(input);
        converted.GetBytes("model.embed_tokens.weight").ToArray().Should().Equal(original.GetBytes("model.embed_tokens.weight").ToArray());
        foreach ((string name, float[] values) in bf16)
        {
            (byte[] codes, float[] scales) = QuantizeDirectly(converted.GetInfo(name).Shape, values);
            converted.GetBytes(name).ToArray().Should().Equal(codes, name);
            MemoryMarshal.Cast<byte, float>(converted.GetBytes(name + "_scale_inv")).ToArray().Should().Equal(scales);
        }

        var experts = CheckpointExperts.Load(converted, TestCheckpoints.Layer);
        experts.Experts.Should().Be(TestCheckpoints.Experts);
    }

    [Test]
    public void AnInterleavedConversionComputesTheSameLayer()
    {
        using var dir = new TempDirectory();
        string input = dir.Sub("bf16");
        TestCheckpoints.WriteBf16(input, shards: 2);
        CheckpointConverter.Convert(input, Path.Combine(dir.Path, "plain"), _context, new ConversionOptions());
        ConversionResult fused = CheckpointConverter.Convert(input, Path.Combine(dir.Path, "fused"), _context, new ConversionOptions { Interleave = true });
        fused.TensorsQuantized.Should().Be(2 * TestCheckpoints.Experts, "gate and up become one tensor");

        using Checkpoint plain = Checkpoint.Open(Path.Combine(dir.Path, "plain"));
        using Checkpoint interleaved = Checkpoint.Open(Path.Combine(dir.Path, "fused"));
        interleaved.Contains("model.layers.3.mlp.experts.0.gate_up_proj.weight").Should().BeTrue();
        interleaved.Contains("model.layers.3.mlp.experts.0.gate_proj.weight").Should().BeFalse();
        var a = CheckpointExperts.Load(plain, TestCheckpoints.Layer);
        var b = CheckpointExperts.Load(interleaved, TestCheckpoints.Layer);
        b.W13Interleaved.Should().BeTrue();

        var inputs = RoutedInputs.Random(6, TestCheckpoints.Hidden, TestCheckpoints.Experts, TestCheckpoints.TopK, 5);
        Forward(b, inputs).Should().Equal(Forward(a, inputs), "the layer undoes the interleave");
    }

    [Test]
    public void Fp8GateAndUpAreFusedWithoutRequantization()
    {
        using var dir = new TempDirectory();
        string input = dir.Sub("fp8");
        TestCheckpoints.WriteFp8(input);
        ConversionResult result = CheckpointConverter.Convert(input, Path.Combine(dir.Path, "fused"), _context, new ConversionOptions { Interleave = true });
        result.TensorsFused.Should().Be(TestCheckpoints.Experts);
        using Checkpoint plain = Checkpoint.Open(input);
        using Checkpoint fused = Checkpoint.Open(Path.Combine(dir.Path, "fused"));
        var inputs = RoutedInputs.Random(4, TestCheckpoints.Hidden, TestCheckpoints.Experts, TestCheckpoints.TopK, 9);
        Forward(CheckpointExperts.Load(fused, TestCheckpoints.Layer), inputs).Should().Equal(Forward(CheckpointExperts.Load(plain, TestCheckpoints.Layer), inputs));
    }

    [Test]
    public void Ue8m0ScalesArePowersOfTwo()
    {
        using var dir = new TempDirectory();
        string input = dir.Sub("bf16");
        TestCheckpoints.WriteBf16(input);
        CheckpointConverter.Convert(input, Path.Combine(dir.Path, "out"), _context, new ConversionOptions { Quantization = QuantizationOptions.Ue8m0Scales });
        using Checkpoint converted = Checkpoint.Open(Path.Combine(dir.Path, "out"));
        float[] scales = MemoryMarshal.Cast<byte, float>(converted.GetBytes("model.layers.3.mlp.experts.0.down_proj.weight_scale_inv")).ToArray();
        scales.Should().OnlyContain(s => (BitConverter.SingleToInt32Bits(s) & 0x7FFFFF) == 0);
    }

    [Test]
    public void ExistingOutputIsKeptUnlessOverwriteIsAsked()
    {
        using var dir = new TempDirectory();
        string input = dir.Sub("bf16"), output = dir.Sub("out");
        TestCheckpoints.WriteBf16(input);
        File.WriteAllText(Path.Combine(output, "model.safetensors"), "keep me");
        FluentActions.Invoking(() => CheckpointConverter.Convert(input, output, _context, new ConversionOptions()))
            .Should().Throw<IOException>().WithMessage("*already exists (pass --force*");
        File.ReadAllText(Path.Combine(output, "model.safetensors")).Should().Be("keep me");
        CheckpointConverter.Convert(input, output, _context, new ConversionOptions { Overwrite = true });
        FluentActions.Invoking(() => CheckpointConverter.Convert(input, input, _context, new ConversionOptions { Overwrite = true }))
            .Should().Throw<IOException>().WithMessage("*must not be the input's directory*");
    }

    [Test]
    public void CancellationLeavesNoPartialShard()
    {
        using var dir = new TempDirectory();
        string input = dir.Sub("bf16"), output = Path.Combine(dir.Path, "out");
        TestCheckpoints.WriteBf16(input);
        using var cancel = new CancellationTokenSource();
        FluentActions.Invoking(() => CheckpointConverter.Convert(input, output, _context, new ConversionOptions(), new Inline(_ => cancel.Cancel()), cancel.Token))
            .Should().Throw<OperationCanceledException>();
        Directory.GetFiles(output).Should().BeEmpty();
    }

    private (byte[] Codes, float[] Scales) QuantizeDirectly(IReadOnlyList<long> shape, float[] values)
    {
        using DeviceTensor w = DeviceTensor.Allocate(_context, DataType.Float32, shape[0], shape[1]);
        using DeviceTensor q = DeviceTensor.Allocate(_context, DataType.Float8E4M3, shape[0], shape[1]);
        using DeviceTensor s = DeviceTensor.Allocate(_context, DataType.Float32, ExpertWeightsExtensions.Blocks(shape[0]), ExpertWeightsExtensions.Blocks(shape[1]));
        w.CopyFrom<float>(values);
        _context.QuantizeWeights(w, q, s);
        return (q.ToArray<byte>(), s.ToArray<float>());
    }

    private ushort[] Forward(CheckpointExperts weights, RoutedInputs inputs)
    {
        using ExpertTensors tensors = ExpertTensors.Upload(_context, weights);
        using MoeLayer layer = MoeLayer.Create(_context, ExpertTensors.LayerOptions(weights, inputs.TopK, inputs.Tokens, 1f), tensors.W13, tensors.W13Scales, tensors.W2, tensors.W2Scales);
        using DeviceTensor x = DeviceTensor.Allocate(_context, DataType.BFloat16, inputs.Tokens, weights.Hidden);
        using DeviceTensor idx = DeviceTensor.Allocate(_context, DataType.Int32, inputs.Tokens, inputs.TopK);
        using DeviceTensor w = DeviceTensor.Allocate(_context, DataType.Float32, inputs.Tokens, inputs.TopK);
        using DeviceTensor y = DeviceTensor.Allocate(_context, DataType.BFloat16, inputs.Tokens, weights.Hidden);
        x.CopyFrom<BFloat16>(inputs.X);
        idx.CopyFrom<int>(inputs.TopkIdx);
        w.CopyFrom<float>(inputs.TopkWeights);
        layer.Forward(x, null, idx, w, y);
        return y.ToArray<ushort>();
    }

    private sealed class Inline(Action<ConversionProgress> report) : IProgress<ConversionProgress>
    {
        public void Report(ConversionProgress value) => report(value);
    }
}
