using System.IO.Compression;
using System.Reflection;
using System.Xml.Linq;
using FluentAssertions;
using MegaMoe;
using NUnit.Framework;

namespace MegaMoe.PackageConsumer;

/// <summary>The freshly packed package, restored from a local folder, works in a project that knows nothing else.</summary>
public sealed class PackageTests
{
    private static string Metadata(string key) =>
        typeof(PackageTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    [Test]
    public void TheNativeLibraryIsLoadedFromThePackage()
    {
        Environment.GetEnvironmentVariable("MEGAMOE_NATIVE_PATH").Should().BeNullOrEmpty("the package must be found on its own");
        MegaMoeLibrary.Path.Should().Be(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libmegamoe.so"));
        MegaMoeLibrary.Version.ToString(3).Should().Be(Metadata("MegaMoeHeaderVersion"));
        typeof(MoeContext).Assembly.GetName().Version!.ToString(3).Should().Be(Metadata("MegaMoeHeaderVersion"));
    }

    [Test]
    public void QuantizationGivesTheDocumentedCodes()
    {
        using MoeContext context = MoeContext.Create(Backend.Cpu);
        using DeviceTensor x = DeviceTensor.Allocate(context, DataType.Float32, 1, 128);
        using DeviceTensor q = DeviceTensor.Allocate(context, DataType.Float8E4M3, 1, 128);
        using DeviceTensor s = DeviceTensor.Allocate(context, DataType.Float32, 1, 1);
        x.CopyFrom<float>(Enumerable.Repeat(1f, 128).ToArray());
        context.QuantizeActivations(x, q, s);

        // amax 1 -> scale 1/448 and every value the largest finite E4M3, 448 (code 0x7E).
        s.ToArray<float>()[0].Should().Be(1f / 448);
        q.ToArray<byte>().Should().OnlyContain(code => code == 0x7E);
    }

    [Test]
    public void AMoeLayerRuns()
    {
        const int E = 2, TopK = 1, H = 128, I = 128, T = 3;
        using MoeContext context = MoeContext.Create(Backend.Cpu);
        var options = new MoeLayerOptions { Experts = E, TopK = TopK, Hidden = H, Intermediate = I, MaxTokens = T };
        using DeviceTensor w13 = DeviceTensor.Allocate(context, DataType.Float32, E, 2 * I, H);
        using DeviceTensor w2 = DeviceTensor.Allocate(context, DataType.Float32, E, H, I);
        var random = new Random(1);
        w13.CopyFrom<float>(Enumerable.Range(0, E * 2 * I * H).Select(_ => (float)(random.NextDouble() - 0.5) / 8).ToArray());
        w2.CopyFrom<float>(Enumerable.Range(0, E * H * I).Select(_ => (float)(random.NextDouble() - 0.5) / 8).ToArray());
        using MoeLayer layer = MoeLayer.Create(context, options, w13, null, w2, null);

        using DeviceTensor x = DeviceTensor.Allocate(context, DataType.BFloat16, T, H);
        using DeviceTensor idx = DeviceTensor.Allocate(context, DataType.Int32, T, TopK);
        using DeviceTensor weights = DeviceTensor.Allocate(context, DataType.Float32, T, TopK);
        using DeviceTensor y = DeviceTensor.Allocate(context, DataType.BFloat16, T, H);
        x.CopyFrom<BFloat16>(Enumerable.Range(0, T * H).Select(i => (BFloat16)(float)Math.Sin(i)).ToArray());
        idx.CopyFrom<int>([0, 1, -1]);
        weights.CopyFrom<float>([1f, 0.5f, 1f]);
        layer.Forward(x, null, idx, weights, y);

        float[] output = Array.ConvertAll(y.ToArray<BFloat16>(), v => (float)v);
        output.Take(2 * H).Should().OnlyContain(v => float.IsFinite(v)).And.Contain(v => v != 0);
        output.Skip(2 * H).Should().OnlyContain(v => v == 0, "the third token's only slot is dropped");
    }

    [Test]
    public void ThePackageHoldsDocsReadmeLicenceAndNativeLibraryAndItsMetadata()
    {
        string version = Metadata("MegaMoeHeaderVersion");
        string package = Path.Combine(Metadata("MegaMoePackageSource"), $"MegaMoe.{version}.nupkg");
        using ZipArchive zip = ZipFile.OpenRead(package);
        zip.Entries.Select(e => e.FullName).Should().Contain(
            ["lib/net10.0/MegaMoe.dll", "lib/net10.0/MegaMoe.xml", "README.md", "LICENSE", "runtimes/linux-x64/native/libmegamoe.so"]);

        using Stream nuspec = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
        XElement metadata = XDocument.Load(nuspec).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        string Field(string name) => metadata.Elements().Single(e => e.Name.LocalName == name).Value;
        Field("id").Should().Be("MegaMoe");
        Field("version").Should().Be(version);
        Field("readme").Should().Be("README.md");
        Field("description").Should().Contain("FP8");
        metadata.Elements().Single(e => e.Name.LocalName == "repository").Attribute("type")!.Value.Should().Be("git");
        XElement license = metadata.Elements().Single(e => e.Name.LocalName == "license");
        license.Attribute("type")!.Value.Should().Be("expression");
        license.Value.Should().Be("MIT");
        Field("authors").Should().Be("The MegaMoe authors");
        Field("copyright").Should().Be("Copyright (c) 2026 The MegaMoe authors");
        Field("tags").Should().Contain("moe");
    }
}
