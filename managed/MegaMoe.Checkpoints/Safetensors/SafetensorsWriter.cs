using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace MegaMoe.Checkpoints.Safetensors;

/// <summary>
/// Writes a safetensors file tensor by tensor: every tensor is declared up front (so the header, which precedes the
/// data, can be written first), then their bytes are written in the declared order. Only the tensor being written has
/// to be in memory. The file appears under its name only after <see cref="Complete"/>; until then it is a temporary
/// file next to it, deleted if the writer is disposed early, so an interrupted conversion leaves no half-written file.
/// </summary>
public sealed class SafetensorsWriter : IDisposable
{
    private readonly string _path;
    private readonly string _temporaryPath;
    private readonly FileStream _stream;
    private readonly IReadOnlyList<SafetensorsTensorSpec> _tensors;
    private int _next;
    private bool _completed;

    private SafetensorsWriter(string path, IReadOnlyList<SafetensorsTensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        _path = path;
        _tensors = tensors;
        _temporaryPath = path + ".partial";
        _stream = new FileStream(_temporaryPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        try
        {
            byte[] header = Header(tensors, metadata);
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            _stream.Write(length);
            _stream.Write(header);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The tensor the next <see cref="WriteTensor"/> must write, or <see langword="null"/> when all are written.</summary>
    public SafetensorsTensorSpec? Next => _next < _tensors.Count ? _tensors[_next] : null;

    /// <summary>Starts a file at <paramref name="path"/> holding <paramref name="tensors"/>, in that order.</summary>
    /// <param name="path">The file to create (replaced on <see cref="Complete"/> if it exists).</param>
    /// <param name="tensors">The tensors, in the order their data will be written.</param>
    /// <param name="metadata">The <c>__metadata__</c> entries, if any.</param>
    /// <exception cref="ArgumentException">A name is empty, repeated or reserved, or a dimension is negative.</exception>
    public static SafetensorsWriter Create(
        string path, IReadOnlyList<SafetensorsTensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (SafetensorsTensorSpec tensor in tensors)
        {
            if (tensor.Name.Length == 0 || tensor.Name == SafetensorsHeader.MetadataKey || !names.Add(tensor.Name))
            {
                throw new ArgumentException($"Tensor name '{tensor.Name}' is empty, reserved or repeated.", nameof(tensors));
            }

            if (tensor.Shape.Any(d => d < 0))
            {
                throw new ArgumentException($"Tensor '{tensor.Name}' has a negative dimension.", nameof(tensors));
            }
        }

        return new SafetensorsWriter(path, tensors, metadata);
    }

    /// <summary>Writes the bytes of the next declared tensor, which must be named <paramref name="name"/>.</summary>
    /// <exception cref="InvalidOperationException">Another tensor is due, or all are written.</exception>
    /// <exception cref="ArgumentException">The byte count is not the declared size.</exception>
    public void WriteTensor(string name, ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        SafetensorsTensorSpec expected = Next
            ?? throw new InvalidOperationException($"{_path}: all {_tensors.Count} declared tensors are written; '{name}' is not expected.");
        if (expected.Name != name)
        {
            throw new InvalidOperationException($"{_path}: tensor '{expected.Name}' is due next, not '{name}'.");
        }

        if (data.Length != expected.ByteLength)
        {
            throw new ArgumentException($"{_path}: tensor '{name}' is declared as {expected.ByteLength} bytes; {data.Length} were given.", nameof(data));
        }

        _stream.Write(data);
        _next++;
    }

    /// <summary>Writes the next declared tensor from elements (little-endian, as the format stores them).</summary>
    public void WriteTensor<T>(string name, ReadOnlySpan<T> data)
        where T : unmanaged => WriteTensor(name, MemoryMarshal.AsBytes(data));

    /// <summary>Finishes the file and moves it to its path.</summary>
    /// <exception cref="InvalidOperationException">Some declared tensors were not written.</exception>
    public void Complete()
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (Next is { } missing)
        {
            throw new InvalidOperationException($"{_path}: {_tensors.Count - _next} declared tensors were not written, from '{missing.Name}'.");
        }

        _stream.Flush(flushToDisk: false);
        _stream.Dispose();
        File.Move(_temporaryPath, _path, overwrite: true);
        _completed = true;
    }

    /// <summary>Closes the writer; if <see cref="Complete"/> was not called, the partial file is deleted.</summary>
    public void Dispose()
    {
        if (_completed)
        {
            return;
        }

        _completed = true;
        _stream.Dispose();
        File.Delete(_temporaryPath);
    }

    // Data offsets follow the declared order; the JSON is padded with spaces to a multiple of 8 bytes so that the
    // data, and with it every tensor of 8-byte elements, starts aligned in a memory-mapped file.
    private static byte[] Header(IReadOnlyList<SafetensorsTensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach ((string key, string value) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    json.WriteString(key, value);
                }

                json.WriteEndObject();
            }

            long offset = 0;
            foreach (SafetensorsTensorSpec tensor in tensors)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", tensor.DType.ToHeaderName());
                json.WriteStartArray("shape");
                foreach (long d in tensor.Shape)
                {
                    json.WriteNumberValue(d);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += tensor.ByteLength;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        int padding = (int)((8 - (buffer.Length % 8)) % 8);
        for (int i = 0; i < padding; i++)
        {
            buffer.WriteByte((byte)' ');
        }

        return buffer.ToArray();
    }
}
