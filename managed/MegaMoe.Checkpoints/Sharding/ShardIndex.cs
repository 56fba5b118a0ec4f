using System.Text.Json;
using System.Text.Unicode;
using MegaMoe.Checkpoints.Safetensors;

namespace MegaMoe.Checkpoints.Sharding;

/// <summary>
/// The index of a sharded checkpoint (<c>model.safetensors.index.json</c>, as Hugging Face writes it):
/// <c>{"metadata": {...}, "weight_map": {"tensor name": "shard file name", ...}}</c>.
/// </summary>
public sealed class ShardIndex
{
    /// <summary>The file name the index conventionally has.</summary>
    public const string DefaultFileName = "model.safetensors.index.json";

    /// <summary>Creates an index.</summary>
    /// <param name="weightMap">Tensor name to the shard's file name (in the index's directory).</param>
    /// <param name="totalSize">Bytes of tensor data in all shards (the <c>metadata.total_size</c> entry).</param>
    public ShardIndex(IReadOnlyDictionary<string, string> weightMap, long totalSize)
    {
        WeightMap = weightMap;
        TotalSize = totalSize;
    }

    /// <summary>Tensor name to the shard's file name.</summary>
    public IReadOnlyDictionary<string, string> WeightMap { get; }

    /// <summary>Bytes of tensor data in all shards.</summary>
    public long TotalSize { get; }

    /// <summary>Reads and validates an index file.</summary>
    /// <exception cref="SafetensorsFormatException">It is not valid JSON, lacks <c>weight_map</c>, or names a file outside its directory.</exception>
    public static ShardIndex Read(string path)
    {
        string name = Path.GetFileName(path);
        try
        {
            byte[] bytes = File.ReadAllBytes(path);
            if (!Utf8.IsValid(bytes))
            {
                throw new SafetensorsFormatException($"{name}: not valid UTF-8.");
            }

            using JsonDocument document = JsonDocument.Parse(bytes);
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("weight_map", out JsonElement map)
                || map.ValueKind != JsonValueKind.Object)
            {
                throw new SafetensorsFormatException($"{name}: expected an object with a 'weight_map' object.");
            }

            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty entry in map.EnumerateObject())
            {
                string? file = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString() : null;

                // A shard must be a plain file name beside the index: an index must not reach outside its directory.
                if (string.IsNullOrEmpty(file) || file != Path.GetFileName(file) || file is "." or "..")
                {
                    throw new SafetensorsFormatException($"{name}: weight_map['{entry.Name}'] must be a file name in the index's directory, not {entry.Value.GetRawText()}.");
                }

                if (!weightMap.TryAdd(entry.Name, file))
                {
                    throw new SafetensorsFormatException($"{name}: weight_map names '{entry.Name}' twice.");
                }
            }

            long total = root.TryGetProperty("metadata", out JsonElement metadata) && metadata.ValueKind == JsonValueKind.Object
                && metadata.TryGetProperty("total_size", out JsonElement size) && size.ValueKind == JsonValueKind.Number
                && size.TryGetInt64(out long t) ? t : 0;
            return new ShardIndex(weightMap, total);
        }
        catch (JsonException e)
        {
            throw new SafetensorsFormatException($"{name}: not valid JSON: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            // A name or string with an escaped unpaired surrogate ("\ud800") cannot be read as a .NET string.
            throw new SafetensorsFormatException($"{name}: holds a string that is not valid text: {e.Message}", e);
        }
    }

    /// <summary>Writes the index to <paramref name="path"/>, tensors sorted by name.</summary>
    public void Write(string path)
    {
        using FileStream stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteStartObject("metadata");
        json.WriteNumber("total_size", TotalSize);
        json.WriteEndObject();
        json.WriteStartObject("weight_map");
        foreach ((string tensor, string file) in WeightMap.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            json.WriteString(tensor, file);
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }
}
