using FluentAssertions;
using MegaMoe.Checkpoints.Safetensors;
using MegaMoe.Checkpoints.Sharding;
using MegaMoe.Checkpoints.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Checkpoints.Tests;

public sealed class ShardedCheckpointTests
{
    [Test]
    public void AnIndexedCheckpointFindsEveryTensorInItsShard()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path, shards: 3);
        using Checkpoint checkpoint = Checkpoint.Open(dir.Path);
        checkpoint.IndexPath.Should().EndWith(ShardIndex.DefaultFileName);
        checkpoint.Shards.Should().HaveCount(3);
        ShardIndex index = ShardIndex.Read(checkpoint.IndexPath!);
        foreach ((string tensor, string file) in index.WeightMap)
        {
            Path.GetFileName(checkpoint.ShardOf(tensor).Path).Should().Be(file);
            checkpoint.GetBytes(tensor).Length.Should().Be((int)checkpoint.GetInfo(tensor).ByteLength);
        }

        checkpoint.TensorNames.Should().HaveCount(index.WeightMap.Count);
    }

    [Test]
    public void ADirectoryWithoutIndexUsesEveryShard()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path, shards: 2);
        File.Delete(Path.Combine(dir.Path, ShardIndex.DefaultFileName));
        using Checkpoint checkpoint = Checkpoint.Open(dir.Path);
        checkpoint.IndexPath.Should().BeNull();
        checkpoint.Contains("model.embed_tokens.weight").Should().BeTrue();
    }

    [Test]
    public void ASingleFileIsACheckpoint()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path);
        using Checkpoint checkpoint = Checkpoint.Open(dir.File("model.safetensors"));
        checkpoint.Shards.Should().ContainSingle();
    }

    [Test]
    public void AMissingShardIsNamed()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path, shards: 2);
        File.Delete(dir.File("model-00002-of-00002.safetensors"));
        FluentActions.Invoking(() => Checkpoint.Open(dir.Path)).Should().Throw<FileNotFoundException>().WithMessage("*model-00002-of-00002.safetensors*does not exist*");
    }

    [Test]
    public void AnIndexPointingAtTheWrongShardIsRefused()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path, shards: 2);
        string index = dir.File(ShardIndex.DefaultFileName);
        var map = new Dictionary<string, string>(ShardIndex.Read(index).WeightMap) { ["model.embed_tokens.weight"] = "model-00002-of-00002.safetensors" };
        new ShardIndex(map, 0).Write(index);
        FluentActions.Invoking(() => Checkpoint.Open(dir.Path)).Should().Throw<SafetensorsFormatException>().WithMessage("*maps 'model.embed_tokens.weight' to model-00002-of-00002.safetensors, which has no such tensor*");
    }

    [TestCase("../outside.safetensors")]
    [TestCase("/etc/passwd")]
    [TestCase("")]
    public void AnIndexCannotReachOutsideItsDirectory(string file)
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File(ShardIndex.DefaultFileName), $$$"""{"weight_map":{"a":"{{{file}}}"}}""");
        FluentActions.Invoking(() => Checkpoint.Open(dir.Path)).Should().Throw<SafetensorsFormatException>().WithMessage("*must be a file name in the index's directory*");
    }

    [Test]
    public void AMalformedIndexIsRefused()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File(ShardIndex.DefaultFileName), "{\"metadata\":{}}");
        FluentActions.Invoking(() => Checkpoint.Open(dir.Path)).Should().Throw<SafetensorsFormatException>().WithMessage("*'weight_map'*");
        File.WriteAllText(dir.File(ShardIndex.DefaultFileName), "{");
        FluentActions.Invoking(() => Checkpoint.Open(dir.Path)).Should().Throw<SafetensorsFormatException>().WithMessage("*not valid JSON*");
    }

    [Test]
    public void ATensorInTwoShardsWithoutIndexIsAmbiguous()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path);
        File.Copy(dir.File("model.safetensors"), dir.File("copy.safetensors"));
        FluentActions.Invoking(() => Checkpoint.Open(dir.Path)).Should().Throw<SafetensorsFormatException>().WithMessage("*is in both*");
    }

    [Test]
    public void AnEmptyDirectoryIsNotACheckpoint()
    {
        using var dir = new TempDirectory();
        FluentActions.Invoking(() => Checkpoint.Open(dir.Path)).Should().Throw<FileNotFoundException>().WithMessage("*no *.safetensors files*");
    }
}
