using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Unicode;

namespace MegaMoe.Checkpoints.Safetensors;

/// <summary>
/// The validated header of a safetensors file: an 8-byte little-endian length N, N bytes of UTF-8 JSON mapping tensor
/// names to <c>{dtype, shape, data_offsets}</c> (plus an optional string-to-string <c>__metadata__</c>), then the data.
/// Validation is as strict as the reference implementation: the tensors must tile the data exactly (no overlap, no gap,
/// nothing after the last one), so a truncated, padded or spliced file is refused before any tensor is read.
/// </summary>
public sealed class SafetensorsHeader
{
    /// <summary>The largest header accepted (the reference implementation's limit); beyond it the length is corrupt.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>The key of the metadata entry.</summary>
    public const string MetadataKey = "__metadata__";

    private SafetensorsHeader(long headerLength, List<SafetensorsTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        HeaderLength = headerLength;
        Tensors = tensors;
        Metadata = metadata;
        ByName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>N: bytes of JSON after the 8-byte length; the data starts at 8 + N.</summary>
    public long HeaderLength { get; }

    /// <summary>Offset of the data section in the file.</summary>
    public long DataStart => 8 + HeaderLength;

    /// <summary>The tensors in the order of their data.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    /// <summary>The tensors by name.</summary>
    public IReadOnlyDictionary<string, SafetensorsTensorInfo> ByName { get; }

    /// <summary>The <c>__metadata__</c> entries (empty when there are none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Parses and validates the start of a file whose total length is <paramref name="fileLength"/>.</summary>
    /// <param name="file">At least the first 8 + N bytes of the file (all of it when memory-mapped).</param>
    /// <param name="fileLength">The file's length in bytes.</param>
    /// <param name="fileName">Named in error messages.</param>
    /// <exception cref="SafetensorsFormatException">The file is not a valid safetensors file; the message says why.</exception>
    public static SafetensorsHeader Parse(ReadOnlySpan<byte> file, long fileLength, string fileName)
    {
        if (fileLength < 8)
        {
            throw Error(fileName, $"the file is {fileLength} bytes, shorter than the 8-byte header length (truncated?)");
        }

        ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (declared > MaxHeaderBytes)
        {
            throw Error(fileName, $"the header length is {declared} bytes, over the {MaxHeaderBytes}-byte limit (not a safetensors file, or corrupt)");
        }

        long headerLength = (long)declared;
        if (headerLength < 2)
        {
            throw Error(fileName, $"the header length is {headerLength} bytes; a header is at least '{{}}'");
        }

        if (8 + headerLength > fileLength)
        {
            throw Error(fileName, $"the header length is {headerLength} bytes but only {fileLength - 8} bytes follow (truncated?)");
        }

        ReadOnlySpan<byte> json = file.Slice(8, (int)headerLength);
        if (json[0] != (byte)'{')
        {
            throw Error(fileName, "the header does not start with '{'");
        }

        long dataLength = fileLength - 8 - headerLength;
        List<SafetensorsTensorInfo> tensors;
        Dictionary<string, string> metadata;
        try
        {
            (tensors, metadata) = ParseJson(json, fileName);
        }
        catch (InvalidOperationException e)
        {
            // A name or string holding an escaped unpaired surrogate ("\ud800") cannot be read as a .NET string.
            throw new SafetensorsFormatException($"{fileName}: the header holds a string that is not valid text: {e.Message}", e);
        }

        CheckTiling(tensors, dataLength, fileName);
        return new SafetensorsHeader(headerLength, tensors, metadata);
    }

    private static (List<SafetensorsTensorInfo>, Dictionary<string, string>) ParseJson(ReadOnlySpan<byte> json, string fileName)
    {
        // System.Text.Json checks UTF-8 only when a string is read (throwing InvalidOperationException), so check it first.
        if (!Utf8.IsValid(json))
        {
            throw Error(fileName, "the header is not valid UTF-8");
        }

        // The format pads the header with trailing spaces; JSON allows trailing whitespace, so no trimming is needed.
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new SafetensorsFormatException($"{fileName}: the header is not valid JSON: {e.Message}", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Error(fileName, $"the header is a JSON {document.RootElement.ValueKind}, not an object");
            }

            var tensors = new List<SafetensorsTensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                // JsonDocument keeps duplicate keys; two entries for one name would make the file ambiguous.
                if (!seen.Add(property.Name))
                {
                    throw Error(fileName, $"the header names '{property.Name}' twice");
                }

                if (property.Name == MetadataKey)
                {
                    ReadMetadata(property.Value, metadata, fileName);
                }
                else
                {
                    tensors.Add(ReadTensor(property.Name, property.Value, fileName));
                }
            }

            tensors.Sort((a, b) => a.Offset != b.Offset ? a.Offset.CompareTo(b.Offset) : a.ByteLength.CompareTo(b.ByteLength));
            return (tensors, metadata);
        }
    }

    private static void ReadMetadata(JsonElement value, Dictionary<string, string> metadata, string fileName)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Error(fileName, $"'{MetadataKey}' is a JSON {value.ValueKind}, not an object of strings");
        }

        foreach (JsonProperty entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
            {
                throw Error(fileName, $"'{MetadataKey}.{entry.Name}' is a JSON {entry.Value.ValueKind}, not a string");
            }

            metadata[entry.Name] = entry.Value.GetString()!;
        }
    }

    private static SafetensorsTensorInfo ReadTensor(string name, JsonElement value, string fileName)
    {
        string where = $"tensor '{name}'";
        if (name.Length == 0)
        {
            throw Error(fileName, "a tensor has an empty name");
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Error(fileName, $"{where} is a JSON {value.ValueKind}, not an object");
        }

        string? dtypeName = null;
        JsonElement? shape = null, offsets = null;
        foreach (JsonProperty field in value.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype" when field.Value.ValueKind == JsonValueKind.String:
                    dtypeName = field.Value.GetString();
                    break;
                case "shape":
                    shape = field.Value;
                    break;
                case "data_offsets":
                    offsets = field.Value;
                    break;
                default:
                    throw Error(fileName, $"{where} has an unexpected field '{field.Name}' (expected dtype, shape, data_offsets)");
            }
        }

        if (dtypeName is null || shape is null || offsets is null)
        {
            throw Error(fileName, $"{where} needs a string 'dtype', a 'shape' and 'data_offsets'");
        }

        if (!SafetensorsDTypes.TryParse(dtypeName, out SafetensorsDType dtype))
        {
            throw Error(fileName, $"{where} has dtype '{dtypeName}', which is not one of {SafetensorsDTypes.KnownNames}");
        }

        long[] dims = ReadIntegers(shape.Value, fileName, $"{where}: 'shape'");
        long[] range = ReadIntegers(offsets.Value, fileName, $"{where}: 'data_offsets'");
        if (range.Length != 2 || range[0] > range[1])
        {
            throw Error(fileName, $"{where}: 'data_offsets' must be [begin, end] with begin <= end, not [{string.Join(", ", range)}]");
        }

        long expected;
        try
        {
            expected = dims.Aggregate((long)dtype.SizeInBytes(), (size, d) => checked(size * d));
        }
        catch (OverflowException)
        {
            throw Error(fileName, $"{where}: shape [{string.Join(", ", dims)}] is too large (its byte size overflows)");
        }

        if (range[1] - range[0] != expected)
        {
            throw Error(
                fileName,
                $"{where}: {dtypeName}[{string.Join(", ", dims)}] needs {expected} bytes but data_offsets [{range[0]}, {range[1]}] hold {range[1] - range[0]}");
        }

        return new SafetensorsTensorInfo(name, dtype, dims, range[0], expected);
    }

    private static long[] ReadIntegers(JsonElement value, string fileName, string what)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Error(fileName, $"{what} is a JSON {value.ValueKind}, not an array of integers");
        }

        var result = new long[value.GetArrayLength()];
        int i = 0;
        foreach (JsonElement item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long n) || n < 0)
            {
                throw Error(fileName, $"{what} holds {item.GetRawText()}, not a non-negative integer");
            }

            result[i++] = n;
        }

        return result;
    }

    // Sorted by offset, each tensor must start where the previous one ended, and the last must end at the file's end.
    private static void CheckTiling(List<SafetensorsTensorInfo> tensors, long dataLength, string fileName)
    {
        long end = 0;
        SafetensorsTensorInfo? previous = null;
        foreach (SafetensorsTensorInfo tensor in tensors)
        {
            if (tensor.Offset < end)
            {
                throw Error(fileName, $"tensor '{tensor.Name}' (bytes {tensor.Offset}..{tensor.Offset + tensor.ByteLength}) overlaps '{previous!.Name}' (bytes {previous.Offset}..{end})");
            }

            if (tensor.Offset > end)
            {
                throw Error(fileName, $"there are {tensor.Offset - end} unused bytes before tensor '{tensor.Name}' (at {end}..{tensor.Offset} of the data)");
            }

            end = tensor.Offset + tensor.ByteLength;
            if (end > dataLength)
            {
                throw Error(fileName, $"tensor '{tensor.Name}' ends at byte {end} of the data, but the file holds only {dataLength} bytes of data (truncated?)");
            }

            previous = tensor;
        }

        if (end != dataLength)
        {
            throw Error(fileName, $"{dataLength - end} bytes follow the last tensor's data (the header does not describe them)");
        }
    }

    private static SafetensorsFormatException Error(string fileName, string message) => new($"{fileName}: {message}");
}
