using System.Buffers.Binary;
using System.Numerics;
using MegaMoe.Checkpoints.Safetensors;
using MegaMoe.Checkpoints.Sharding;

namespace MegaMoe.Checkpoints.Tests.Fuzz;

/// <summary>
/// The properties every input must keep. Reader: the only exception <see cref="SafetensorsHeader.Parse"/> and
/// <see cref="SafetensorsFile.Open"/> may throw for a bad file is <see cref="SafetensorsFormatException"/>, whose
/// message starts with the file name; both agree (accept or refuse, same message); a file that opens has every tensor
/// inside the data, sized as dtype x shape, with the tensors tiling the data exactly (so none overlap); and every
/// tensor's bytes can be read and equal the file's bytes at that range. Index: <see cref="ShardIndex.Read"/> throws
/// only <see cref="SafetensorsFormatException"/> and accepts only plain file names; <see cref="Checkpoint.Open"/> on
/// it throws only that or <see cref="FileNotFoundException"/>, and every tensor it maps can be read.
/// </summary>
internal static class FuzzOracle
{
    public enum Outcome
    {
        Accepted,
        Refused,
        Violation,
    }

    /// <summary>Checks one safetensors input, written to <paramref name="path"/> (reused between calls).</summary>
    public static (Outcome Outcome, string Detail) CheckSafetensors(byte[] input, string path)
    {
        string name = Path.GetFileName(path);
        SafetensorsHeader? parsed = null;
        string? refusal = null;
        try
        {
            parsed = SafetensorsHeader.Parse(input, input.Length, name);
        }
        catch (SafetensorsFormatException e)
        {
            refusal = e.Message;
        }
        catch (Exception e)
        {
            return Violation($"SafetensorsHeader.Parse threw {e}");
        }

        if (refusal is not null && !refusal.StartsWith(name + ": ", StringComparison.Ordinal))
        {
            return Violation($"the message does not start with the file name: {refusal}");
        }

        if (parsed is not null && CheckLayout(parsed, input) is { } layoutProblem)
        {
            return Violation($"SafetensorsHeader.Parse accepted a bad layout: {layoutProblem}");
        }

        Overwrite(path, input);
        SafetensorsFile file;
        try
        {
            file = SafetensorsFile.Open(path);
        }
        catch (SafetensorsFormatException e)
        {
            return refusal is null ? Violation($"Open refused what Parse accepted: {e.Message}")
                : e.Message != refusal ? Violation($"Open and Parse refuse differently:\n  Open:  {e.Message}\n  Parse: {refusal}")
                : (Outcome.Refused, refusal);
        }
        catch (Exception e)
        {
            return Violation($"SafetensorsFile.Open threw {e}");
        }

        using (file)
        {
            if (parsed is null)
            {
                return Violation($"Open accepted what Parse refused ({refusal})");
            }

            if (CheckLayout(file.Header, input) is { } problem)
            {
                return Violation($"SafetensorsFile.Open accepted a bad layout: {problem}");
            }

            try
            {
                foreach (SafetensorsTensorInfo tensor in file.Tensors)
                {
                    ReadOnlySpan<byte> expected = input.AsSpan((int)(file.Header.DataStart + tensor.Offset), (int)tensor.ByteLength);
                    if (!file.GetBytes(tensor).SequenceEqual(expected) || !file.GetBytes(tensor.Name).SequenceEqual(expected))
                    {
                        return Violation($"tensor '{tensor.Name}' reads other bytes than the file holds at its range");
                    }
                }
            }
            catch (Exception e)
            {
                return Violation($"reading a tensor of an accepted file threw {e}");
            }
        }

        return (Outcome.Accepted, "");
    }

    /// <summary>What is wrong with an accepted header, independently of the reader's own checks; null when nothing.</summary>
    public static string? CheckLayout(SafetensorsHeader header, byte[] file)
    {
        if (file.Length < 8 || header.HeaderLength != (long)BinaryPrimitives.ReadUInt64LittleEndian(file))
        {
            return $"HeaderLength {header.HeaderLength} is not the file's length field";
        }

        if (header.DataStart > file.Length || header.ByName.Count != header.Tensors.Count)
        {
            return $"the data starts at {header.DataStart} of {file.Length} bytes, or names are lost ({header.ByName.Count} of {header.Tensors.Count})";
        }

        BigInteger dataLength = file.Length - header.DataStart, end = 0;
        foreach (SafetensorsTensorInfo t in header.Tensors.OrderBy(t => t.Offset).ThenBy(t => t.ByteLength))
        {
            if (t.Name.Length == 0 || t.Name == SafetensorsHeader.MetadataKey || !ReferenceEquals(header.ByName[t.Name], t))
            {
                return $"tensor name '{t.Name}' is empty, reserved or not unique";
            }

            BigInteger size = t.Shape.Aggregate(new BigInteger(t.DType.SizeInBytes()), (p, d) => p * d);
            if (t.Shape.Any(d => d < 0) || size != t.ByteLength)
            {
                return $"tensor '{t.Name}' {t.Describe()} claims {t.ByteLength} bytes, not {size}";
            }

            if (t.Offset < 0 || t.Offset + (BigInteger)t.ByteLength > dataLength)
            {
                return $"tensor '{t.Name}' bytes [{t.Offset}, +{t.ByteLength}) leave the {dataLength} bytes of data";
            }

            if (t.ByteLength > 0 && t.Offset < end)
            {
                return $"tensor '{t.Name}' at {t.Offset} overlaps the previous one (ending at {end})";
            }

            end = BigInteger.Max(end, t.Offset + (BigInteger)t.ByteLength);
        }

        BigInteger total = header.Tensors.Aggregate(BigInteger.Zero, (s, t) => s + t.ByteLength);
        return total == dataLength ? null : $"the tensors hold {total} bytes but the data is {dataLength} bytes (not tiled)";
    }

    /// <summary>
    /// Checks one index json, written as the index of <paramref name="directory"/> (which holds the shards it may name):
    /// first <see cref="ShardIndex.Read"/>, then, when it is accepted, <see cref="Checkpoint.Open"/> of the directory.
    /// </summary>
    public static (Outcome Outcome, string Detail) CheckShardIndex(byte[] input, string directory)
    {
        string path = Path.Combine(directory, ShardIndex.DefaultFileName);
        Overwrite(path, input);
        ShardIndex index;
        try
        {
            index = ShardIndex.Read(path);
        }
        catch (SafetensorsFormatException e)
        {
            return e.Message.StartsWith(ShardIndex.DefaultFileName + ": ", StringComparison.Ordinal)
                ? (Outcome.Refused, e.Message)
                : Violation($"the message does not start with the file name: {e.Message}");
        }
        catch (Exception e)
        {
            return Violation($"ShardIndex.Read threw {e}");
        }

        foreach ((string tensor, string file) in index.WeightMap)
        {
            if (file.Length == 0 || file != Path.GetFileName(file) || file is "." or ".." || file.Contains('/'))
            {
                return Violation($"ShardIndex.Read accepted '{file}' for '{tensor}', which is not a plain file name");
            }
        }

        Checkpoint checkpoint;
        try
        {
            checkpoint = Checkpoint.Open(directory);
        }
        catch (Exception e) when (e is SafetensorsFormatException or FileNotFoundException)
        {
            return (Outcome.Refused, e.Message);
        }
        catch (Exception e)
        {
            return Violation($"Checkpoint.Open threw {e}");
        }

        using (checkpoint)
        {
            try
            {
                foreach ((string tensor, string file) in index.WeightMap)
                {
                    if (Path.GetFileName(checkpoint.ShardOf(tensor).Path) != file
                        || checkpoint.GetBytes(tensor).Length != checkpoint.GetInfo(tensor).ByteLength)
                    {
                        return Violation($"'{tensor}' is not read from {file} as the index says");
                    }
                }

                if (checkpoint.TensorNames.Count() != index.WeightMap.Count)
                {
                    return Violation("the checkpoint holds other tensors than the index maps");
                }
            }
            catch (Exception e)
            {
                return Violation($"reading a tensor of an opened checkpoint threw {e}");
            }
        }

        return (Outcome.Accepted, "");
    }

    // Rewrites the file in place. Not File.WriteAllBytes: truncating a file to 0 bytes and rewriting it makes ext4
    // (auto_da_alloc) flush it to disk on close, which costs milliseconds per input.
    private static void Overwrite(string path, byte[] input)
    {
        using var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
        stream.Write(input);
        stream.SetLength(input.Length);
    }

    private static (Outcome, string) Violation(string detail) => (Outcome.Violation, detail);
}
