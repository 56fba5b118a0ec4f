using MegaMoe.Checkpoints.Safetensors;

namespace MegaMoe.Checkpoints.Sharding;

/// <summary>
/// A checkpoint made of one or more safetensors shards, looked up by tensor name: a directory with an index json (the
/// shards it names), a directory of <c>*.safetensors</c> files, or a single file. All shards are memory-mapped and
/// their headers validated on open; no tensor data is read until asked for.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private readonly Dictionary<string, SafetensorsFile> _byTensor;
    private readonly List<SafetensorsFile> _shards;

    private Checkpoint(string path, string? indexPath, List<SafetensorsFile> shards, Dictionary<string, SafetensorsFile> byTensor)
    {
        Path = path;
        IndexPath = indexPath;
        _shards = shards;
        _byTensor = byTensor;
    }

    /// <summary>The directory or file it was opened from.</summary>
    public string Path { get; }

    /// <summary>The index json it was opened through, if any.</summary>
    public string? IndexPath { get; }

    /// <summary>The shards, in file-name order.</summary>
    public IReadOnlyList<SafetensorsFile> Shards => _shards;

    /// <summary>Every tensor name, sorted.</summary>
    public IEnumerable<string> TensorNames => _byTensor.Keys.Order(StringComparer.Ordinal);

    /// <summary>Opens a checkpoint directory (with or without an index json) or one safetensors file.</summary>
    /// <exception cref="FileNotFoundException">The path, or a shard the index names, does not exist.</exception>
    /// <exception cref="SafetensorsFormatException">A shard or the index is malformed, or they disagree.</exception>
    public static Checkpoint Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (File.Exists(path))
        {
            return FromFiles(path, null, [path], null);
        }

        if (!Directory.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such checkpoint directory or safetensors file.", path);
        }

        string[] indexes = Directory.GetFiles(path, "*.safetensors.index.json");
        if (indexes.Length > 1)
        {
            throw new SafetensorsFormatException($"{path}: more than one index ({string.Join(", ", indexes.Select(System.IO.Path.GetFileName))}); open one shard set at a time.");
        }

        if (indexes.Length == 1)
        {
            ShardIndex index = ShardIndex.Read(indexes[0]);
            string[] files = index.WeightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)
                .Select(f => System.IO.Path.Combine(path, f)).ToArray();
            return FromFiles(path, indexes[0], files, index);
        }

        string[] shards = Directory.GetFiles(path, "*.safetensors").Order(StringComparer.Ordinal).ToArray();
        if (shards.Length == 0)
        {
            throw new FileNotFoundException($"{path}: no *.safetensors files and no index json in this directory.", path);
        }

        return FromFiles(path, null, shards, null);
    }

    /// <summary>Whether a tensor of that name exists.</summary>
    public bool Contains(string name) => _byTensor.ContainsKey(name);

    /// <summary>The shard holding tensor <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No shard holds it.</exception>
    public SafetensorsFile ShardOf(string name) =>
        _byTensor.TryGetValue(name, out SafetensorsFile? file)
            ? file
            : throw new KeyNotFoundException($"{Path}: the checkpoint has no tensor named '{name}'.");

    /// <summary>The description of tensor <paramref name="name"/>.</summary>
    public SafetensorsTensorInfo GetInfo(string name) => ShardOf(name).GetInfo(name);

    /// <summary>The bytes of tensor <paramref name="name"/>, valid until the checkpoint is disposed.</summary>
    public ReadOnlySpan<byte> GetBytes(string name) => ShardOf(name).GetBytes(name);

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (SafetensorsFile shard in _shards)
        {
            shard.Dispose();
        }
    }

    private static Checkpoint FromFiles(string path, string? indexPath, string[] files, ShardIndex? index)
    {
        var shards = new List<SafetensorsFile>();
        try
        {
            foreach (string file in files)
            {
                if (!File.Exists(file))
                {
                    throw new FileNotFoundException($"{indexPath}: names shard '{System.IO.Path.GetFileName(file)}', which does not exist.", file);
                }

                shards.Add(SafetensorsFile.Open(file));
            }

            var byTensor = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            if (index is not null)
            {
                // Only what the index maps is part of the checkpoint; each mapping must point at a shard that has it.
                foreach ((string tensor, string file) in index.WeightMap)
                {
                    SafetensorsFile shard = shards.First(s => System.IO.Path.GetFileName(s.Path) == file);
                    if (!shard.Contains(tensor))
                    {
                        throw new SafetensorsFormatException($"{System.IO.Path.GetFileName(indexPath)}: maps '{tensor}' to {file}, which has no such tensor.");
                    }

                    byTensor[tensor] = shard;
                }
            }
            else
            {
                foreach (SafetensorsFile shard in shards)
                {
                    foreach (SafetensorsTensorInfo tensor in shard.Tensors)
                    {
                        if (byTensor.TryGetValue(tensor.Name, out SafetensorsFile? other))
                        {
                            throw new SafetensorsFormatException($"{path}: tensor '{tensor.Name}' is in both {System.IO.Path.GetFileName(other.Path)} and {System.IO.Path.GetFileName(shard.Path)}.");
                        }

                        byTensor[tensor.Name] = shard;
                    }
                }
            }

            return new Checkpoint(path, indexPath, shards, byTensor);
        }
        catch
        {
            shards.ForEach(s => s.Dispose());
            throw;
        }
    }
}
