using FluentAssertions;
using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Reference;
using MegaMoe.Checkpoints.Safetensors;
using MegaMoe.Checkpoints.Sharding;
using MegaMoe.Checkpoints.Synthetic;
using MegaMoe.Checkpoints.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Checkpoints.Tests;

public sealed class CheckpointExpertsTests
{
    [TestCase(1)]
    [TestCase(3)]
    public void TheExpertsOfALayerAreFoundByNameAcrossShards(int shards)
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path, shards);
        using Checkpoint checkpoint = Checkpoint.Open(dir.Path);
        var experts = CheckpointExperts.Load(checkpoint, TestCheckpoints.Layer);
        SyntheticMoe source = TestCheckpoints.Fp8Source();
        (experts.Experts, experts.Hidden, experts.Intermediate, experts.W13Interleaved)
            .Should().Be((TestCheckpoints.Experts, TestCheckpoints.Hidden, TestCheckpoints.Intermediate, false));
        for (int e = 0; e < experts.Experts; e++)
        {
            Read(experts.ReadW13, e, experts.W13ExpertBytes()).Should().Equal(Read(source.ReadW13, e, source.W13ExpertBytes()));
            Read(experts.ReadW2, e, experts.W2ExpertBytes()).Should().Equal(Read(source.ReadW2, e, source.W2ExpertBytes()));
            ReadScales(experts.ReadW13Scales, e, 4).Should().Equal(ReadScales(source.ReadW13Scales, e, 4));
            ReadScales(experts.ReadW2Scales, e, 2).Should().Equal(ReadScales(source.ReadW2Scales, e, 2));
        }
    }

    [Test]
    public void TheFloat64ReferenceSeesTheSameLayerThroughTheCheckpoint()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path, shards: 2);
        using Checkpoint checkpoint = Checkpoint.Open(dir.Path);
        var inputs = RoutedInputs.Random(5, TestCheckpoints.Hidden, TestCheckpoints.Experts, TestCheckpoints.TopK, 3);
        (double[] fromCheckpoint, int used) = Float64Reference.Forward(CheckpointExperts.Load(checkpoint, TestCheckpoints.Layer), inputs, 2.5);
        (double[] fromSource, _) = Float64Reference.Forward(TestCheckpoints.Fp8Source(), inputs, 2.5);
        fromCheckpoint.Should().Equal(fromSource);
        used.Should().BePositive();
    }

    [Test]
    public void ALayerWithoutExpertsListsTheLayersThatHaveThem()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path);
        using Checkpoint checkpoint = Checkpoint.Open(dir.Path);
        FluentActions.Invoking(() => CheckpointExperts.Load(checkpoint, 0)).Should().Throw<InvalidDataException>()
            .WithMessage($"*layer 0 has no routed experts*layers with experts: {TestCheckpoints.Layer}.");
    }

    [Test]
    public void Bf16ExpertsMustBeConvertedFirst()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteBf16(dir.Path);
        using Checkpoint checkpoint = Checkpoint.Open(dir.Path);
        FluentActions.Invoking(() => CheckpointExperts.Load(checkpoint, TestCheckpoints.Layer)).Should().Throw<InvalidDataException>()
            .WithMessage("*gate_proj.weight' is BF16, not F8_E4M3; convert the checkpoint first (megamoe convert)*");
    }

    [Test]
    public void AMissingExpertOrScaleIsNamed()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path);
        string source = dir.File("model.safetensors");
        string missingScale = dir.Sub("scale");
        string missingExpert = dir.Sub("expert");
        Rewrite(source, Path.Combine(missingScale, "model.safetensors"), name => name != "model.layers.3.mlp.experts.2.down_proj.weight_scale_inv");
        Rewrite(source, Path.Combine(missingExpert, "model.safetensors"), name => !name.StartsWith("model.layers.3.mlp.experts.1.up_proj", StringComparison.Ordinal));
        using (Checkpoint checkpoint = Checkpoint.Open(missingScale))
        {
            FluentActions.Invoking(() => CheckpointExperts.Load(checkpoint, 3)).Should().Throw<InvalidDataException>()
                .WithMessage("*'model.layers.3.mlp.experts.2.down_proj.weight_scale_inv' (the block scales of*) is missing*");
        }

        using (Checkpoint checkpoint = Checkpoint.Open(missingExpert))
        {
            FluentActions.Invoking(() => CheckpointExperts.Load(checkpoint, 3)).Should().Throw<InvalidDataException>()
                .WithMessage("*'model.layers.3.mlp.experts.1.up_proj.weight' is missing*");
        }
    }

    [Test]
    public void ExpertNamesParseAndPrintTheDeepSeekLayout()
    {
        ExpertTensorName.TryParse("model.layers.12.mlp.experts.255.down_proj.weight_scale_inv", out ExpertTensorName name).Should().BeTrue();
        name.Should().Be(new ExpertTensorName(12, 255, ExpertProjection.Down, IsScale: true));
        name.ToString().Should().Be("model.layers.12.mlp.experts.255.down_proj.weight_scale_inv");
        ExpertTensorName.TryParse("model.layers.12.mlp.shared_experts.down_proj.weight", out _).Should().BeFalse();
        ExpertTensorName.TryParse("model.layers.1.mlp.experts.0.gate_proj.bias", out _).Should().BeFalse();
    }

    private static byte[] Read(Action<int, Span<byte>> read, int expert, long length)
    {
        var buffer = new byte[length];
        read(expert, buffer);
        return buffer;
    }

    private static float[] ReadScales(Action<int, Span<float>> read, int expert, int length)
    {
        var buffer = new float[length];
        read(expert, buffer);
        return buffer;
    }

    private static void Rewrite(string from, string to, Func<string, bool> keep)
    {
        using SafetensorsFile file = SafetensorsFile.Open(from);
        var kept = file.Tensors.Where(t => keep(t.Name)).ToList();
        using SafetensorsWriter writer = SafetensorsWriter.Create(to, kept.Select(t => new SafetensorsTensorSpec(t.Name, t.DType, t.Shape)).ToList());
        foreach (SafetensorsTensorInfo t in kept)
        {
            writer.WriteTensor(t.Name, file.GetBytes(t));
        }

        writer.Complete();
    }
}
