using System.Buffers.Binary;
using System.Runtime.InteropServices;
using FluentAssertions;
using MegaMoe.Checkpoints.Safetensors;
using MegaMoe.Checkpoints.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Checkpoints.Tests;

public sealed class SafetensorsRoundTripTests
{
    [Test]
    public void WrittenTensorsReadBackWithTheirTypesShapesBytesAndMetadata()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.safetensors");
        float[] f32 = [1.5f, -2f, 3.25f, 0f, 7f, 8f];
        byte[] fp8 = [0x00, 0x38, 0x7E, 0xFE];
        long[] i64 = [long.MaxValue];
        using (SafetensorsWriter writer = SafetensorsWriter.Create(
            path,
            [
                new("w", SafetensorsDType.F32, [2, 3]), new("q", SafetensorsDType.F8E4M3, [4]), new("scalar", SafetensorsDType.I64, []),
                new("empty", SafetensorsDType.BF16, [0, 5]),
            ],
            new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ü" }))
        {
            writer.WriteTensor<float>("w", f32);
            writer.WriteTensor("q", fp8);
            writer.WriteTensor<long>("scalar", i64);
            writer.WriteTensor("empty", ReadOnlySpan<byte>.Empty);
            writer.Complete();
        }

        using SafetensorsFile file = SafetensorsFile.Open(path);
        file.Tensors.Select(t => t.Name).Should().Equal("w", "q", "scalar", "empty");
        file.GetInfo("w").Describe().Should().Be("F32[2, 3]");
        file.GetSpan<float>("w").ToArray().Should().Equal(f32);
        file.GetBytes("q").ToArray().Should().Equal(fp8);
        file.GetInfo("scalar").Shape.Should().BeEmpty();
        file.GetSpan<long>("scalar").ToArray().Should().Equal(i64);
        file.GetInfo("empty").ElementCount.Should().Be(0);
        file.Metadata.Should().Contain("format", "pt").And.Contain("note", "ü");
        file.Contains("nope").Should().BeFalse();
        FluentActions.Invoking(() => file.GetInfo("nope")).Should().Throw<KeyNotFoundException>().WithMessage("*'nope'*");
    }

    [Test]
    public void TheDataStartsEightByteAligned()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.safetensors");
        using (SafetensorsWriter writer = SafetensorsWriter.Create(path, [new("x", SafetensorsDType.U8, [3])]))
        {
            writer.WriteTensor("x", new byte[] { 1, 2, 3 });
            writer.Complete();
        }

        byte[] bytes = File.ReadAllBytes(path);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        (headerLength % 8).Should().Be(0);
        bytes[(int)headerLength + 8].Should().Be(1);
    }

    [Test]
    public void TheWriterEnforcesTheDeclaredOrderAndSizes()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.safetensors");
        using SafetensorsWriter writer = SafetensorsWriter.Create(path, [new("a", SafetensorsDType.F32, [2]), new("b", SafetensorsDType.U8, [1])]);
        FluentActions.Invoking(() => writer.WriteTensor("b", new byte[1])).Should().Throw<InvalidOperationException>().WithMessage("*'a' is due next*");
        FluentActions.Invoking(() => writer.WriteTensor("a", new byte[7])).Should().Throw<ArgumentException>().WithMessage("*8 bytes; 7 were given*");
        writer.WriteTensor<float>("a", [1f, 2f]);
        FluentActions.Invoking(writer.Complete).Should().Throw<InvalidOperationException>().WithMessage("*not written, from 'b'*");
    }

    [Test]
    public void AnUnfinishedWriterLeavesNoFileBehind()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.safetensors");
        using (SafetensorsWriter writer = SafetensorsWriter.Create(path, [new("a", SafetensorsDType.U8, [1])]))
        {
            File.Exists(path).Should().BeFalse("the file appears only on Complete");
        }

        Directory.GetFiles(dir.Path).Should().BeEmpty();
    }

    [Test]
    public void TheWriterRejectsRepeatedReservedOrNegativeDeclarations()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.safetensors");
        FluentActions.Invoking(() => SafetensorsWriter.Create(path, [new("a", SafetensorsDType.U8, [1]), new("a", SafetensorsDType.U8, [1])]))
            .Should().Throw<ArgumentException>().WithMessage("*'a'*repeated*");
        FluentActions.Invoking(() => SafetensorsWriter.Create(path, [new("__metadata__", SafetensorsDType.U8, [1])]))
            .Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => SafetensorsWriter.Create(path, [new("n", SafetensorsDType.U8, [-1])]))
            .Should().Throw<ArgumentException>().WithMessage("*negative*");
    }

    [Test]
    public void BigEndianFreeElementViewsMatchTheBytes()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.safetensors");
        ushort[] bits = [0x3F80, 0xC000];
        using (SafetensorsWriter writer = SafetensorsWriter.Create(path, [new("b", SafetensorsDType.BF16, [2])]))
        {
            writer.WriteTensor<ushort>("b", bits);
            writer.Complete();
        }

        using SafetensorsFile file = SafetensorsFile.Open(path);
        MemoryMarshal.Cast<byte, ushort>(file.GetBytes("b")).ToArray().Should().Equal(bits);
        FluentActions.Invoking(() => file.GetSpan<float>("b").Length).Should().Throw<InvalidDataException>().WithMessage("*BF16, not a 4-byte type*");
    }
}
