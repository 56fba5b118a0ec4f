using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace MegaMoe.Checkpoints.Safetensors;

/// <summary>
/// A safetensors file opened read-only and memory-mapped: opening reads and validates only the header, and a tensor's
/// bytes are paged in by the OS when read, so checkpoints far larger than memory can be opened and read tensor by tensor.
/// Spans returned by this object are valid until it is disposed.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private bool _disposed;

    private SafetensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* start, SafetensorsHeader header)
    {
        Path = path;
        _map = map;
        _view = view;
        _base = start;
        Header = header;
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>The validated header.</summary>
    public SafetensorsHeader Header { get; }

    /// <summary>The tensors in the order of their data.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors => Header.Tensors;

    /// <summary>The <c>__metadata__</c> entries.</summary>
    public IReadOnlyDictionary<string, string> Metadata => Header.Metadata;

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="SafetensorsFormatException">The file is malformed; the message says how.</exception>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    public static SafetensorsFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string name = System.IO.Path.GetFileName(path);
        long length = new FileInfo(path) is { Exists: true } info
            ? info.Length
            : throw new FileNotFoundException($"{path}: no such safetensors file.", path);

        // An empty file cannot be mapped; let the header check explain it.
        if (length < 8)
        {
            SafetensorsHeader.Parse(File.ReadAllBytes(path), length, name);
        }

        MemoryMappedFile map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        byte* start = null;
        try
        {
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
            start += view.PointerOffset;
            var header = SafetensorsHeader.Parse(
                new ReadOnlySpan<byte>(start, (int)Math.Min(length, 8 + SafetensorsHeader.MaxHeaderBytes)), length, name);
            return new SafetensorsFile(path, map, view, start, header);
        }
        catch
        {
            if (start != null)
            {
                view!.SafeMemoryMappedViewHandle.ReleasePointer();
            }

            view?.Dispose();
            map.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => Header.ByName.ContainsKey(name);

    /// <summary>The description of tensor <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">The file has no such tensor.</exception>
    public SafetensorsTensorInfo GetInfo(string name) =>
        Header.ByName.TryGetValue(name, out SafetensorsTensorInfo? info)
            ? info
            : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'.");

    /// <summary>The raw little-endian bytes of tensor <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">The file has no such tensor.</exception>
    public ReadOnlySpan<byte> GetBytes(string name) => GetBytes(GetInfo(name));

    /// <summary>The raw bytes of <paramref name="tensor"/>, which must come from this file.</summary>
    /// <exception cref="NotSupportedException">The tensor is 2 GiB or larger (a span cannot hold it); read it in parts.</exception>
    public ReadOnlySpan<byte> GetBytes(SafetensorsTensorInfo tensor) => GetBytes(tensor, 0, tensor.ByteLength);

    /// <summary>Bytes [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>) of <paramref name="tensor"/>.</summary>
    public ReadOnlySpan<byte> GetBytes(SafetensorsTensorInfo tensor, long start, long length)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!ReferenceEquals(Header.ByName.GetValueOrDefault(tensor.Name), tensor))
        {
            throw new ArgumentException($"Tensor '{tensor.Name}' does not belong to {Path}.", nameof(tensor));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, tensor.ByteLength - start);
        if (length > int.MaxValue)
        {
            throw new NotSupportedException($"{Path}: tensor '{tensor.Name}' part of {length} bytes is too large for one span; read it in parts.");
        }

        return new ReadOnlySpan<byte>(_base + Header.DataStart + tensor.Offset + start, (int)length);
    }

    /// <summary>Tensor <paramref name="name"/> as elements of <typeparamref name="T"/> (e.g. <c>ushort</c> for BF16).</summary>
    /// <exception cref="InvalidDataException">The element size of the tensor is not that of <typeparamref name="T"/>.</exception>
    public ReadOnlySpan<T> GetSpan<T>(string name)
        where T : unmanaged
    {
        SafetensorsTensorInfo info = GetInfo(name);
        if (info.DType.SizeInBytes() != sizeof(T))
        {
            throw new InvalidDataException($"{Path}: tensor '{name}' is {info.DType.ToHeaderName()}, not a {sizeof(T)}-byte type.");
        }

        return MemoryMarshal.Cast<byte, T>(GetBytes(info));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
