using FluentAssertions;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>Native failures surface as typed exceptions carrying the library's message; managed misuse is caught early.</summary>
[TestFixture]
public sealed class ErrorTests : CpuContextFixture
{
    [Test]
    public void InvalidShapeNamesTheFunctionAndTheArgument()
    {
        using var scope = new DeviceScope(Cpu);

        Action gemm = () => Cpu.GemmDense(
            scope.Allocate(DataType.Float8E4M3, 4, 100),
            scope.Allocate(DataType.Float32, 4, 1),
            scope.Allocate(DataType.Float8E4M3, 128, 100),
            scope.Allocate(DataType.Float32, 1, 1),
            scope.Allocate(DataType.BFloat16, 4, 128));

        MegaMoeInvalidArgumentException e = gemm.Should().Throw<MegaMoeInvalidArgumentException>().Which;
        TestContext.Out.WriteLine(e.NativeMessage);
        e.Status.Should().Be(MegaMoeStatus.InvalidArgument);
        e.NativeMessage.Should().Contain("megamoe_gemm_dense").And.Contain("'a'");
        e.Message.Should().Be(e.NativeMessage);
    }

    [Test]
    public void WrongDataTypeNamesTheArgument()
    {
        using var scope = new DeviceScope(Cpu);

        Action quantize = () => Cpu.QuantizeActivations(
            scope.Allocate(DataType.Int32, 2, 128), scope.Allocate(DataType.Float8E4M3, 2, 128), scope.Allocate(DataType.Float32, 2, 1));

        quantize.Should().Throw<MegaMoeInvalidArgumentException>()
            .Which.NativeMessage.Should().Contain("megamoe_quantize_activations").And.Contain("'x'").And.Contain("dtype");
    }

    [Test]
    public void OutOfRangeExpertIsRejectedBeforeAnythingIsWritten()
    {
        using var scope = new DeviceScope(Cpu);
        DeviceTensor d = scope.Filled(DataType.BFloat16, 0x11, 128, 128);

        Action gemm = () => Cpu.GemmGroupedContiguous(
            scope.Filled(DataType.Float8E4M3, 0x38, 128, 128),
            scope.Filled(DataType.Float32, 0, 128, 1),
            scope.Filled(DataType.Float8E4M3, 0x38, 2, 128, 128),
            scope.Filled(DataType.Float32, 0, 2, 1, 1),
            scope.Upload(DataType.Int32, Enumerable.Repeat(2, 128).ToArray(), 128),
            d);

        gemm.Should().Throw<MegaMoeInvalidArgumentException>().Which.NativeMessage.Should().Contain("m_indices");
        d.ToArray<ushort>().Should().OnlyContain(bits => bits == 0x1111);
    }

    [Test]
    public void UnavailableCudaBackendSaysWhy()
    {
        if (MoeContext.IsBackendAvailable(Backend.Cuda, 0, out _))
        {
            Assert.Ignore("The CUDA backend is available here.");
        }

        Action create = () => MoeContext.Create(Backend.Cuda);

        MegaMoeBackendUnavailableException e = create.Should().Throw<MegaMoeBackendUnavailableException>().Which;
        e.Status.Should().Be(MegaMoeStatus.BackendUnavailable);
        e.NativeMessage.Should().Contain("CUDA");
    }

    [Test]
    public void HugeAllocationIsOutOfMemory()
    {
        Action allocate = () => DeviceTensor.Allocate(Cpu, DataType.Float32, 1L << 46);

        allocate.Should().Throw<MegaMoeOutOfMemoryException>().Which.Status.Should().Be(MegaMoeStatus.OutOfMemory);
    }

    [Test]
    public void NegativeThreadCountIsRejected()
    {
        using MoeContext context = MoeContext.Create(Backend.Cpu);

        Action set = () => context.NumThreads = -1;

        set.Should().Throw<MegaMoeInvalidArgumentException>();
        context.NumThreads.Should().Be(0, "a rejected value is not kept");
    }

    [TestCase(MegaMoeStatus.InvalidArgument, typeof(MegaMoeInvalidArgumentException))]
    [TestCase(MegaMoeStatus.Unsupported, typeof(MegaMoeUnsupportedException))]
    [TestCase(MegaMoeStatus.BackendUnavailable, typeof(MegaMoeBackendUnavailableException))]
    [TestCase(MegaMoeStatus.OutOfMemory, typeof(MegaMoeOutOfMemoryException))]
    [TestCase(MegaMoeStatus.Device, typeof(MegaMoeDeviceException))]
    [TestCase(MegaMoeStatus.Cancelled, typeof(MegaMoeCancelledException))]
    [TestCase(MegaMoeStatus.Internal, typeof(MegaMoeInternalException))]
    [TestCase((MegaMoeStatus)99, typeof(MegaMoeException))]
    public void EachStatusHasItsExceptionType(MegaMoeStatus status, Type expected)
    {
        MegaMoeException e = MegaMoeException.Create(status, "megamoe_x: argument 'y': z");

        e.Should().BeOfType(expected);
        e.Status.Should().Be(status);
        e.NativeMessage.Should().Be("megamoe_x: argument 'y': z");
    }

    [Test]
    public void SpanOfTheWrongLengthIsRejected()
    {
        using var scope = new DeviceScope(Cpu);
        DeviceTensor tensor = scope.Allocate(DataType.Float32, 4, 4);

        FluentActions.Invoking(() => tensor.CopyFrom<float>(new float[15])).Should().Throw<ArgumentException>()
            .WithParameterName("source");
        FluentActions.Invoking(() => tensor.CopyTo<float>(new float[17])).Should().Throw<ArgumentException>()
            .WithParameterName("destination");
    }

    [Test]
    public void ElementTypeMustMatchTheDataType()
    {
        using var scope = new DeviceScope(Cpu);
        DeviceTensor tensor = scope.Allocate(DataType.BFloat16, 8);

        FluentActions.Invoking(() => tensor.CopyFrom<float>(new float[8])).Should().Throw<ArgumentException>()
            .WithMessage("*BFloat16*Single*");
        FluentActions.Invoking(() => tensor.ToArray<int>()).Should().Throw<ArgumentException>();
    }

    [Test]
    public void CopyPastTheEndIsRejectedByTheLibrary()
    {
        using var scope = new DeviceScope(Cpu);
        DeviceTensor tensor = scope.Allocate(DataType.Int32, 8);

        FluentActions.Invoking(() => tensor.CopyFrom<int>(6, new int[3])).Should().Throw<MegaMoeInvalidArgumentException>();
    }

    [TestCase(new long[0], TestName = "Rank 0 is rejected")]
    [TestCase(new long[] { 1, 2, 3, 4, 5 }, TestName = "Rank 5 is rejected")]
    [TestCase(new long[] { 4, -1 }, TestName = "Negative extent is rejected")]
    [TestCase(new long[] { long.MaxValue, 4 }, TestName = "Overflowing element count is rejected")]
    [TestCase(new long[] { long.MaxValue / 2 }, TestName = "Overflowing byte size is rejected")]
    public void BadShapesAreRejectedBeforeAllocation(long[] shape) =>
        FluentActions.Invoking(() => DeviceTensor.Allocate(Cpu, DataType.Float32, shape))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("shape");

    [Test]
    public void OverflowingElementOffsetIsAnArgumentError()
    {
        using DeviceTensor tensor = DeviceTensor.Allocate(Cpu, DataType.Int32, 4);

        FluentActions.Invoking(() => tensor.CopyFrom<int>(long.MaxValue / 2, new int[1]))
            .Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("elementOffset");
    }

    [Test]
    public void NullArgumentsAreNamed()
    {
        using var scope = new DeviceScope(Cpu);
        DeviceTensor tensor = scope.Allocate(DataType.Float32, 1, 128);

        FluentActions.Invoking(() => Cpu.QuantizeActivations(tensor, null!, tensor)).Should().Throw<ArgumentNullException>()
            .WithParameterName("q");
    }
}
