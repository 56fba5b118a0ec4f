using System.Runtime.InteropServices;
using MegaMoe.Interop;

namespace MegaMoe;

/// <summary>
/// A dense row-major tensor in memory of a <see cref="MoeContext"/>'s device (64-byte aligned host memory on the CPU
/// backend). It owns its native buffer; copies to and from host spans are synchronous with respect to the span.
/// </summary>
public sealed class DeviceTensor : IDisposable
{
    private readonly BufferHandle _buffer;
    private readonly long[] _shape;
    private readonly MegaMoeTensor _descriptor;

    private DeviceTensor(BufferHandle buffer, DataType dataType, long[] shape, long elementCount, MegaMoeTensor descriptor)
    {
        _buffer = buffer;
        _shape = shape;
        _descriptor = descriptor;
        DataType = dataType;
        ElementCount = elementCount;
    }

    /// <summary>The element type.</summary>
    public DataType DataType { get; }

    /// <summary>The extent of each dimension, outermost first.</summary>
    public ReadOnlySpan<long> Shape => _shape;

    /// <summary>The number of dimensions (1 to 4).</summary>
    public int Rank => _shape.Length;

    /// <summary>The product of <see cref="Shape"/>.</summary>
    public long ElementCount { get; }

    /// <summary><see cref="ElementCount"/> times the element size.</summary>
    public long SizeInBytes => ElementCount * DataType.SizeInBytes();

    /// <summary>The native buffer; throws once the tensor is disposed.</summary>
    internal BufferHandle Buffer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_buffer.IsClosed, this);
            return _buffer;
        }
    }

    /// <summary>The native descriptor; pass it only while a <see cref="TensorLease"/> holds this tensor.</summary>
    internal MegaMoeTensor Descriptor => _descriptor;

    /// <summary>Allocates an uninitialized tensor.</summary>
    /// <param name="context">The context whose device holds the memory.</param>
    /// <param name="dataType">The element type.</param>
    /// <param name="shape">1 to 4 non-negative extents, outermost first.</param>
    /// <exception cref="ArgumentException">The rank is not 1 to 4, or an extent is negative, or the size overflows.</exception>
    /// <exception cref="MegaMoeOutOfMemoryException">The device has not enough free memory.</exception>
    public static DeviceTensor Allocate(MoeContext context, DataType dataType, params ReadOnlySpan<long> shape)
    {
        ArgumentNullException.ThrowIfNull(context);

        // The native side sees only a byte count here, so the shape is validated on this side.
        if (shape.Length is < 1 or > MegaMoeTensor.MaxRank)
        {
            throw new ArgumentException(
                $"A tensor has 1 to {MegaMoeTensor.MaxRank} dimensions; got {shape.Length}.", nameof(shape));
        }

        long elementCount = 1;
        long sizeBytes;
        try
        {
            foreach (long extent in shape)
            {
                ArgumentOutOfRangeException.ThrowIfNegative(extent, nameof(shape));
                elementCount = checked(elementCount * extent);
            }

            sizeBytes = checked(elementCount * dataType.SizeInBytes());
        }
        catch (OverflowException e)
        {
            throw new ArgumentException(
                $"A {dataType}[{string.Join(", ", shape.ToArray())}] tensor has more than {long.MaxValue} bytes.",
                nameof(shape),
                e);
        }

        MegaMoeStatus status = NativeMethods.megamoe_buffer_create(context.Handle, sizeBytes, out BufferHandle buffer);
        status.ThrowIfFailed(buffer);
        try
        {
            NativeMethods.megamoe_buffer_get_data(buffer, out nint data, out int deviceType, out int deviceId)
                .ThrowIfFailed();
            var descriptor = new MegaMoeTensor
            {
                Data = data,
                DeviceType = deviceType,
                DeviceId = deviceId,
                Dtype = (int)dataType,
                Rank = shape.Length,
            };
            long stride = 1;
            for (int i = shape.Length - 1; i >= 0; i--)
            {
                descriptor.Shape[i] = shape[i];
                descriptor.Strides[i] = stride;
                stride *= shape[i];
            }

            return new DeviceTensor(buffer, dataType, shape.ToArray(), elementCount, descriptor);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    /// <summary>Copies the whole tensor from host memory.</summary>
    /// <typeparam name="T">An element type matching <see cref="DataType"/> (see <see cref="DataTypeExtensions.IsElementType{T}"/>).</typeparam>
    /// <param name="source">Exactly <see cref="ElementCount"/> elements, row-major.</param>
    /// <param name="stream">The CUDA stream to order the copy on; 0 is the legacy default stream.</param>
    /// <exception cref="ArgumentException">The element type or the length does not match.</exception>
    public void CopyFrom<T>(ReadOnlySpan<T> source, nint stream = default)
        where T : unmanaged
    {
        CheckElementType<T>(nameof(source));
        CheckLength(source.Length, nameof(source));
        CopyFrom(0, source, stream);
    }

    /// <summary>Copies host elements into the tensor starting at a flat (row-major) element index.</summary>
    /// <typeparam name="T">An element type matching <see cref="DataType"/> (see <see cref="DataTypeExtensions.IsElementType{T}"/>).</typeparam>
    /// <param name="elementOffset">The flat index of the first element written.</param>
    /// <param name="source">The elements; the range must lie within the tensor (the native side checks it).</param>
    /// <param name="stream">The CUDA stream to order the copy on; 0 is the legacy default stream.</param>
    /// <exception cref="ArgumentException">The element type does not match.</exception>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="elementOffset"/> is so large that its byte offset does not fit a <see cref="long"/>.
    /// </exception>
    /// <exception cref="MegaMoeInvalidArgumentException">The range does not lie within the tensor.</exception>
    public unsafe void CopyFrom<T>(long elementOffset, ReadOnlySpan<T> source, nint stream = default)
        where T : unmanaged
    {
        CheckElementType<T>(nameof(source));
        if (elementOffset > long.MaxValue / sizeof(T))
        {
            throw new ArgumentOutOfRangeException(
                nameof(elementOffset), elementOffset, "The byte offset of this element does not fit a 64-bit integer.");
        }

        fixed (T* host = source)
        {
            NativeMethods.megamoe_buffer_write(
                Buffer, elementOffset * sizeof(T), host, (long)source.Length * sizeof(T), stream).ThrowIfFailed();
        }
    }

    /// <summary>Copies the whole tensor to host memory.</summary>
    /// <typeparam name="T">An element type matching <see cref="DataType"/> (see <see cref="DataTypeExtensions.IsElementType{T}"/>).</typeparam>
    /// <param name="destination">Exactly <see cref="ElementCount"/> elements, row-major.</param>
    /// <param name="stream">The CUDA stream to order the copy on; 0 is the legacy default stream.</param>
    /// <exception cref="ArgumentException">The element type or the length does not match.</exception>
    public unsafe void CopyTo<T>(Span<T> destination, nint stream = default)
        where T : unmanaged
    {
        CheckElementType<T>(nameof(destination));
        CheckLength(destination.Length, nameof(destination));
        fixed (T* host = destination)
        {
            NativeMethods.megamoe_buffer_read(Buffer, 0, host, SizeInBytes, stream).ThrowIfFailed();
        }
    }

    /// <summary>Copies the whole tensor into a new array.</summary>
    /// <typeparam name="T">An element type matching <see cref="DataType"/> (see <see cref="DataTypeExtensions.IsElementType{T}"/>).</typeparam>
    /// <param name="stream">The CUDA stream to order the copy on; 0 is the legacy default stream.</param>
    /// <exception cref="ArgumentException">The element type does not match.</exception>
    /// <exception cref="NotSupportedException">
    /// The tensor has more elements than a .NET array can hold (<see cref="Array.MaxLength"/>); copy it in parts
    /// with <see cref="CopyTo{T}(Span{T}, nint)"/> on smaller tensors instead.
    /// </exception>
    public T[] ToArray<T>(nint stream = default)
        where T : unmanaged
    {
        CheckElementType<T>(nameof(T));
        if (ElementCount > Array.MaxLength)
        {
            throw new NotSupportedException(
                $"The {DataType}[{string.Join(", ", _shape)}] tensor has {ElementCount} elements, more than an array holds.");
        }

        var result = new T[ElementCount];
        CopyTo<T>(result, stream);
        return result;
    }

    /// <summary>Sets every byte of the tensor to <paramref name="value"/>.</summary>
    /// <param name="value">The byte value.</param>
    /// <param name="stream">The CUDA stream the fill is enqueued on; 0 is the legacy default stream.</param>
    public void Fill(byte value, nint stream = default) =>
        NativeMethods.megamoe_buffer_fill(Buffer, 0, SizeInBytes, value, stream).ThrowIfFailed();

    /// <summary>Frees the native buffer (once the calls using it have returned); harmless when repeated.</summary>
    public void Dispose() => _buffer.Dispose();

    /// <inheritdoc/>
    public override string ToString() =>
        $"DeviceTensor {DataType}[{string.Join(", ", _shape)}]{(_buffer.IsClosed ? " (disposed)" : string.Empty)}";

    private void CheckElementType<T>(string parameterName)
        where T : unmanaged
    {
        if (!DataType.IsElementType<T>())
        {
            throw new ArgumentException(
                $"A {DataType} tensor cannot be copied as {typeof(T).Name} elements.", parameterName);
        }
    }

    private void CheckLength(int length, string parameterName)
    {
        if (length != ElementCount)
        {
            throw new ArgumentException(
                $"The span has {length} elements but the {DataType}[{string.Join(", ", _shape)}] tensor has {ElementCount}.",
                parameterName);
        }
    }
}
