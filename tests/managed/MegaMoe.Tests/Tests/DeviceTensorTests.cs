using FluentAssertions;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>Host copies, fills and metadata of <see cref="DeviceTensor"/>.</summary>
[TestFixture]
public sealed class DeviceTensorTests : CpuContextFixture
{
    [Test]
    public void DescribesItsShape()
    {
        using var tensor = DeviceTensor.Allocate(Cpu, DataType.BFloat16, 3, 5, 7);

        tensor.Shape.ToArray().Should().Equal(3, 5, 7);
        (tensor.Rank, tensor.ElementCount, tensor.SizeInBytes, tensor.DataType).Should().Be((3, 105L, 210L, DataType.BFloat16));
        tensor.ToString().Should().Be("DeviceTensor BFloat16[3, 5, 7]");
    }

    [Test]
    public void RoundTripsEveryElementType()
    {
        Random random = TestRandom.Create();
        RoundTrip(DataType.Float8E4M3, random.NextFp8Array(33).Select(Float8E4M3.FromRawValue).ToArray());
        RoundTrip(DataType.Float8E4M3, random.NextFp8Array(33));
        RoundTrip(DataType.BFloat16, Enumerable.Range(0, 33).Select(_ => (BFloat16)random.NextNormal()).ToArray());
        RoundTrip(DataType.BFloat16, Enumerable.Range(0, 33).Select(_ => (ushort)random.Next(65536)).ToArray());
        RoundTrip(DataType.Float32, Enumerable.Range(0, 33).Select(_ => random.NextNormal()).ToArray());
        RoundTrip(DataType.Int32, Enumerable.Range(0, 33).Select(_ => random.Next()).ToArray());
        RoundTrip(DataType.Int64, Enumerable.Range(0, 33).Select(_ => random.NextInt64()).ToArray());
    }

    [Test]
    public void FillSetsEveryByte()
    {
        using var tensor = DeviceTensor.Allocate(Cpu, DataType.Int32, 2, 3);

        tensor.Fill(0x7F);

        tensor.ToArray<int>().Should().OnlyContain(v => v == 0x7F7F7F7F);
    }

    [Test]
    public void CopyAtAnOffsetWritesOnlyThatRange()
    {
        using var tensor = DeviceTensor.Allocate(Cpu, DataType.Int64, 6);
        tensor.Fill(0);

        tensor.CopyFrom<long>(2, [7, 8, 9]);

        tensor.ToArray<long>().Should().Equal(0, 0, 7, 8, 9, 0);
    }

    [Test]
    public void EmptyTensorsCopyNothing()
    {
        using var tensor = DeviceTensor.Allocate(Cpu, DataType.Float32, 0, 128);

        tensor.CopyFrom<float>([]);

        tensor.ToArray<float>().Should().BeEmpty();
        tensor.SizeInBytes.Should().Be(0);
    }

    private void RoundTrip<T>(DataType dataType, T[] values)
        where T : unmanaged
    {
        using var tensor = DeviceTensor.Allocate(Cpu, dataType, values.Length);
        tensor.CopyFrom<T>(values);

        tensor.ToArray<T>().Should().Equal(values, $"{typeof(T).Name} round-trips through a {dataType} tensor");
    }
}
