using System.Buffers.Binary;
using System.Text;

namespace MegaMoe.Checkpoints.Tests.Support;

/// <summary>Hand-made safetensors bytes, for files no correct writer would produce.</summary>
internal static class RawSafetensors
{
    /// <summary>8-byte length (or <paramref name="declaredLength"/>), the header text, then <paramref name="dataBytes"/> zero bytes.</summary>
    public static byte[] Build(string header, long dataBytes, ulong? declaredLength = null)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        var file = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(file, declaredLength ?? (ulong)json.Length);
        json.CopyTo(file, 8);
        return file;
    }

    public static string Write(TempDirectory directory, string header, long dataBytes, ulong? declaredLength = null)
    {
        string path = directory.File($"t{Guid.NewGuid():N}.safetensors");
        File.WriteAllBytes(path, Build(header, dataBytes, declaredLength));
        return path;
    }
}
