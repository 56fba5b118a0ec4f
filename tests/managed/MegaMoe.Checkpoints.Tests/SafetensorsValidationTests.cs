using FluentAssertions;
using MegaMoe.Checkpoints.Safetensors;
using MegaMoe.Checkpoints.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Checkpoints.Tests;

/// <summary>Every way a file can be malformed is refused on open, with a message naming the file and the problem.</summary>
public sealed class SafetensorsValidationTests
{
    private const string OneU8 = """{"x":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}""";

    private static IEnumerable<TestCaseData> Malformed()
    {
        yield return Case("header not JSON", "{not json", 0, "*not valid JSON*");
        yield return Case("header is an array", "[1,2]", 0, "*does not start with '{'*");
        yield return Case("header is a string", "{}\"", 0, "*not valid JSON*");
        yield return Case("unknown dtype", """{"x":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}}""", 1, "*dtype 'F7'*not one of*BF16*");
        yield return Case("negative dimension", """{"x":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}""", 0, "*'shape' holds -1*");
        yield return Case("fractional dimension", """{"x":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}""", 1, "*'shape' holds 1.5*");
        yield return Case("shape is not an array", """{"x":{"dtype":"U8","shape":4,"data_offsets":[0,4]}}""", 4, "*'shape' is a JSON Number*");
        yield return Case("missing offsets", """{"x":{"dtype":"U8","shape":[4]}}""", 4, "*needs a string 'dtype', a 'shape' and 'data_offsets'*");
        yield return Case("extra field", """{"x":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"y":1}}""", 4, "*unexpected field 'y'*");
        yield return Case("offsets reversed", """{"x":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}""", 4, "*begin <= end*");
        yield return Case("size does not match shape", """{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", 4, "*F32[2] needs 8 bytes*hold 4*");
        yield return Case("shape overflows", """{"x":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}}""", 8, "*too large*");
        yield return Case(
            "overlapping tensors",
            """{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}""", 6, "*'b'*overlaps 'a'*");
        yield return Case(
            "gap between tensors",
            """{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}""", 6, "*2 unused bytes before tensor 'b'*");
        yield return Case("data truncated", OneU8, 3, "*'x' ends at byte 4*only 3 bytes of data (truncated?)*");
        yield return Case("bytes after the last tensor", OneU8, 9, "*5 bytes follow the last tensor*");
        yield return Case("duplicate names", """{"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}""", 0, "*names 'x' twice*");
        yield return Case("metadata not strings", """{"__metadata__":{"a":1}}""", 0, "*'__metadata__.a' is a JSON Number, not a string*");
        yield return Case("metadata not an object", """{"__metadata__":"a"}""", 0, "*'__metadata__' is a JSON String*");
        yield return Case("tensor not an object", """{"x":[1]}""", 0, "*tensor 'x' is a JSON Array*");
    }

    [TestCaseSource(nameof(Malformed))]
    public void MalformedHeadersAreRefused(string header, long dataBytes, string message)
    {
        using var dir = new TempDirectory();
        string path = RawSafetensors.Write(dir, header, dataBytes);
        FluentActions.Invoking(() => SafetensorsFile.Open(path)).Should().Throw<SafetensorsFormatException>()
            .WithMessage(message).And.Message.Should().StartWith(Path.GetFileName(path));
    }

    [TestCase(0, "*0 bytes, shorter than the 8-byte header length*")]
    [TestCase(7, "*7 bytes, shorter than the 8-byte header length*")]
    public void FilesShorterThanTheLengthFieldAreRefused(int length, string message)
    {
        using var dir = new TempDirectory();
        string path = dir.File("short.safetensors");
        File.WriteAllBytes(path, new byte[length]);
        FluentActions.Invoking(() => SafetensorsFile.Open(path)).Should().Throw<SafetensorsFormatException>().WithMessage(message);
    }

    [Test]
    public void AnOversizedHeaderLengthIsRefusedBeforeReadingIt()
    {
        using var dir = new TempDirectory();
        string path = RawSafetensors.Write(dir, OneU8, 4, declaredLength: 1UL << 40);
        FluentActions.Invoking(() => SafetensorsFile.Open(path)).Should().Throw<SafetensorsFormatException>().WithMessage("*over the 100000000-byte limit*");
    }

    [Test]
    public void AHeaderLongerThanTheFileIsRefused()
    {
        using var dir = new TempDirectory();
        string path = RawSafetensors.Write(dir, OneU8, 0, declaredLength: 4096);
        FluentActions.Invoking(() => SafetensorsFile.Open(path)).Should().Throw<SafetensorsFormatException>().WithMessage("*header length is 4096 bytes but only * follow (truncated?)*");
    }

    [Test]
    public void ATruncatedCopyOfAGoodFileIsRefused()
    {
        using var dir = new TempDirectory();
        TestCheckpoints.WriteFp8(dir.Path);
        string path = dir.File("model.safetensors");
        byte[] bytes = File.ReadAllBytes(path);
        string cut = dir.File("cut.safetensors");
        File.WriteAllBytes(cut, bytes[..^100]);
        FluentActions.Invoking(() => SafetensorsFile.Open(cut)).Should().Throw<SafetensorsFormatException>().WithMessage("*truncated*");
    }

    [Test]
    public void HeaderPaddingWithSpacesIsAccepted()
    {
        using var dir = new TempDirectory();
        string path = RawSafetensors.Write(dir, OneU8 + "       ", 4);
        using SafetensorsFile file = SafetensorsFile.Open(path);
        file.GetBytes("x").Length.Should().Be(4);
    }

    [Test]
    public void AMissingFileSaysSo()
    {
        FluentActions.Invoking(() => SafetensorsFile.Open("/nonexistent/x.safetensors")).Should().Throw<FileNotFoundException>().WithMessage("*no such safetensors file*");
    }

    private static TestCaseData Case(string name, string header, long dataBytes, string message) =>
        new TestCaseData(header, dataBytes, message).SetName($"Refused: {name}");
}
