using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using FluentAssertions;
using MegaMoe.Checkpoints.Safetensors;
using MegaMoe.Checkpoints.Sharding;
using MegaMoe.Checkpoints.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Checkpoints.Tests.Fuzz;

/// <summary>
/// Mutation-based property tests of the safetensors reader and the shard index loader. Valid files
/// written by <see cref="SafetensorsWriter"/> (and indexes written by <see cref="ShardIndex.Write"/>) are mutated by
/// <see cref="FuzzMutator"/>; <see cref="FuzzOracle"/> states what every input must keep. Deterministic: input i of a run
/// depends only on (seed, i). CI runs a bounded number per target; long runs set MEGAMOE_SAFETENSORS_FUZZ_ITERATIONS
/// (and MEGAMOE_SAFETENSORS_FUZZ_SEED for other inputs). A violating input is saved under fuzz-artifacts/ (or
/// MEGAMOE_SAFETENSORS_FUZZ_ARTIFACTS); once the reader is fixed, copy it to Fuzz/Corpus/&lt;target&gt;/ named for what it
/// was, and the corpus replay test keeps it. If the test host itself dies, the input it was on is the work-* file there.
/// </summary>
[Category("Fuzz")]
public sealed class SafetensorsFuzzTests
{
    private const long DefaultIterations = 25_000;
    private const ulong DefaultSeed = 0x5AFE7E45;
    private static readonly string CorpusRoot = Path.Combine(AppContext.BaseDirectory, "Fuzz", "Corpus");

    private delegate byte[] Generator(ref FuzzRandom random);

    private static long Iterations => long.TryParse(Environment.GetEnvironmentVariable("MEGAMOE_SAFETENSORS_FUZZ_ITERATIONS"), out long n) && n > 0 ? n : DefaultIterations;

    private static ulong Seed => ulong.TryParse(Environment.GetEnvironmentVariable("MEGAMOE_SAFETENSORS_FUZZ_SEED"), out ulong s) ? s : DefaultSeed;

    private static string ArtifactDirectory => Directory.CreateDirectory(
        Environment.GetEnvironmentVariable("MEGAMOE_SAFETENSORS_FUZZ_ARTIFACTS") is { Length: > 0 } dir ? dir
            : Path.Combine(TestContext.CurrentContext.WorkDirectory, "fuzz-artifacts")).FullName;

    [Test]
    public void ValidFilesRoundTrip()
    {
        using var dir = new TempDirectory();
        foreach (SeedFile seed in SafetensorsSeeds(dir))
        {
            FuzzOracle.CheckSafetensors(seed.Bytes, dir.File("check.safetensors")).Should().Be((FuzzOracle.Outcome.Accepted, ""), seed.Name);
            using SafetensorsFile file = SafetensorsFile.Open(seed.Path);
            file.Tensors.Select(t => (t.Name, t.DType, string.Join(",", t.Shape))).Should()
                .Equal(seed.Tensors.Select(t => (t.Name, t.DType, string.Join(",", t.Shape))), seed.Name);
            foreach ((string name, _, _, byte[] data) in seed.Tensors)
            {
                file.GetBytes(name).ToArray().Should().Equal(data, $"{seed.Name}: tensor {name}");
            }

            file.Metadata.Should().Equal(seed.Metadata, seed.Name);
        }
    }

    [Test]
    public void EveryTruncationAndAnyAppendedByteIsRefused()
    {
        using var dir = new TempDirectory();
        string path = dir.File("cut.safetensors");
        foreach (SeedFile seed in SafetensorsSeeds(dir))
        {
            for (int length = 0; length < seed.Bytes.Length; length++)
            {
                FuzzOracle.CheckSafetensors(seed.Bytes[..length], path).Outcome.Should().Be(FuzzOracle.Outcome.Refused, $"{seed.Name} cut to {length} bytes");
            }

            foreach (byte extra in new byte[] { 0, (byte)' ', 0xFF })
            {
                FuzzOracle.CheckSafetensors([.. seed.Bytes, extra], path).Outcome.Should().Be(FuzzOracle.Outcome.Refused, $"{seed.Name} + 1 byte");
            }
        }
    }

    [Test]
    public void OnlyTheTrueHeaderLengthIsAccepted()
    {
        using var dir = new TempDirectory();
        string path = dir.File("length.safetensors");
        foreach (SeedFile seed in SafetensorsSeeds(dir))
        {
            ulong h = BinaryPrimitives.ReadUInt64LittleEndian(seed.Bytes), f = (ulong)seed.Bytes.Length;
            ulong[] lengths = unchecked(
            [
                0, 1, 2, 7, 8, h - 8, h - 1, h + 1, h + 8, f - 8, f - 7, f, 100_000_000, 100_000_001, int.MaxValue, 1UL << 31, uint.MaxValue,
                1UL << 32, (1UL << 32) + h, (1UL << 31) + h, long.MaxValue, 1UL << 63, (1UL << 63) + h, ulong.MaxValue, 0UL - h,
            ]);
            foreach (ulong length in lengths.Append(h))
            {
                byte[] edited = (byte[])seed.Bytes.Clone();
                BinaryPrimitives.WriteUInt64LittleEndian(edited, length);
                FuzzOracle.CheckSafetensors(edited, path).Outcome.Should()
                    .Be(length == h ? FuzzOracle.Outcome.Accepted : FuzzOracle.Outcome.Refused, $"{seed.Name} with length field {length}");
            }
        }
    }

    [Test]
    public void MutatedSafetensorsFilesOnlyRaiseFormatErrors()
    {
        using var dir = new TempDirectory();
        byte[][] seeds = SafetensorsSeeds(dir).Select(s => s.Bytes).ToArray();
        Fuzz(
            "safetensors",
            (ref FuzzRandom r) => FuzzMutator.MutateSafetensors(ref r, seeds),
            (artifacts, worker) => Path.Combine(artifacts, $"work-safetensors-{worker}.safetensors"),
            FuzzOracle.CheckSafetensors);
    }

    [Test]
    public void MutatedShardIndexesOnlyRaiseFormatErrors()
    {
        using var dir = new TempDirectory();
        byte[][] seeds = ShardIndexSeeds(dir);
        Fuzz(
            "shard-index",
            (ref FuzzRandom r) => FuzzMutator.MutateJsonDocument(ref r, seeds),
            (artifacts, worker) => CheckpointDirectory(Path.Combine(artifacts, $"work-shard-index-{worker}")),
            FuzzOracle.CheckShardIndex);
    }

    private static IEnumerable<TestCaseData> Corpus(string target) =>
        Directory.Exists(Path.Combine(CorpusRoot, target)) && Directory.GetFiles(Path.Combine(CorpusRoot, target)) is { Length: > 0 } files
            ? files.Order(StringComparer.Ordinal).Select(f => new TestCaseData(f).SetName($"Corpus {target}: {Path.GetFileName(f)}"))
            : [new TestCaseData(Path.Combine(CorpusRoot, target, "(missing)")).SetName($"Corpus {target}: no inputs")];

    private static IEnumerable<TestCaseData> SafetensorsCorpus() => Corpus("safetensors");

    private static IEnumerable<TestCaseData> ShardIndexCorpus() => Corpus("shard-index");

    // Replays the corpus (see Expected for what each name prefix requires).
    [TestCaseSource(nameof(SafetensorsCorpus))]
    public void SafetensorsCorpusReplays(string input)
    {
        File.Exists(input).Should().BeTrue("the corpus is copied to the output directory; a lost corpus must not pass");
        using var dir = new TempDirectory();
        (FuzzOracle.Outcome outcome, string detail) = FuzzOracle.CheckSafetensors(File.ReadAllBytes(input), dir.File(Path.GetFileName(input)));
        outcome.Should().BeOneOf(Expected(input), detail);
    }

    [TestCaseSource(nameof(ShardIndexCorpus))]
    public void ShardIndexCorpusReplays(string input)
    {
        File.Exists(input).Should().BeTrue("the corpus is copied to the output directory; a lost corpus must not pass");
        using var dir = new TempDirectory();
        (FuzzOracle.Outcome outcome, string detail) = FuzzOracle.CheckShardIndex(File.ReadAllBytes(input), CheckpointDirectory(dir.Sub("ckpt")));
        outcome.Should().BeOneOf(Expected(input), detail);
    }

    // valid-*: must be accepted; invalid-*: must be refused; crash-* (reproducers of fixed bugs): either, never a violation.
    private static FuzzOracle.Outcome[] Expected(string input) => Path.GetFileName(input) switch
    {
        var n when n.StartsWith("valid-", StringComparison.Ordinal) => [FuzzOracle.Outcome.Accepted],
        var n when n.StartsWith("invalid-", StringComparison.Ordinal) => [FuzzOracle.Outcome.Refused],
        _ => [FuzzOracle.Outcome.Accepted, FuzzOracle.Outcome.Refused],
    };

    // Runs inputs 0..N-1 on every core (input i on worker i % workers, each with its own work file), counts outcomes and
    // distinct refusal messages (numbers and quoted names masked), saves violating inputs and fails if there was one.
    private static void Fuzz(
        string target, Generator generate, Func<string, int, string> workPath, Func<byte[], string, (FuzzOracle.Outcome, string)> check)
    {
        string artifacts = ArtifactDirectory;
        long iterations = Iterations;
        ulong seed = Seed;
        int workers = Math.Clamp(Environment.ProcessorCount, 1, 16);
        long accepted = 0, refused = 0, violations = 0;
        var reasons = new ConcurrentDictionary<string, long>();
        var reports = new ConcurrentQueue<string>();
        var clock = Stopwatch.StartNew();
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, worker =>
        {
            string path = workPath(artifacts, worker);
            for (long i = worker; i < iterations; i += workers)
            {
                var random = new FuzzRandom(seed, i);
                byte[] input = generate(ref random);
                (FuzzOracle.Outcome outcome, string detail) = check(input, path);
                switch (outcome)
                {
                    case FuzzOracle.Outcome.Accepted:
                        Interlocked.Increment(ref accepted);
                        break;
                    case FuzzOracle.Outcome.Refused:
                        Interlocked.Increment(ref refused);
                        reasons.AddOrUpdate(Reason(detail), 1, (_, n) => n + 1);
                        break;
                    default:
                        if (Interlocked.Increment(ref violations) <= 20)
                        {
                            string saved = Path.Combine(artifacts, $"{target}-crash-seed{seed}-input{i}");
                            File.WriteAllBytes(saved, input);
                            reports.Enqueue($"input {i} (saved as {saved}): {detail}");
                        }

                        break;
                }
            }

            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
            else
            {
                File.Delete(path);
            }
        });

        string summary = string.Create(
            CultureInfo.InvariantCulture,
            $"fuzz {target}: {iterations} inputs (seed {seed}, {workers} workers) in {clock.Elapsed.TotalSeconds:F1} s: {accepted} accepted, {refused} refused ({reasons.Count} distinct reasons), {violations} violations");
        TestContext.Progress.WriteLine(summary);
        TestContext.Out.WriteLine(summary);
        foreach ((string reason, long count) in reasons.OrderByDescending(p => p.Value).Take(60))
        {
            TestContext.Out.WriteLine($"  {count,9}  {reason}");
        }

        violations.Should().Be(0, $"every input must be accepted or refused with SafetensorsFormatException; first violations:\n{string.Join("\n\n", reports)}");
        accepted.Should().BeGreaterThan(iterations / 50, "the mutations should still reach the accepting paths");
    }

    private static string Reason(string message)
    {
        string text = message[(message.IndexOf(": ", StringComparison.Ordinal) + 2)..];
        text = Regex.Replace(text, "'[^']*'", "'…'");
        text = Regex.Replace(text, "-?[0-9]+", "#");
        return text.Length > 90 ? text[..90] : text;
    }

    internal sealed record SeedFile(
        string Name, string Path, byte[] Bytes, (string Name, SafetensorsDType DType, long[] Shape, byte[] Data)[] Tensors, Dictionary<string, string> Metadata);

    // Small valid files: no tensors, metadata only, every dtype and rank, empty tensors between others, odd names.
    internal static List<SeedFile> SafetensorsSeeds(TempDirectory dir)
    {
        var shapes = new long[][] { [], [0], [3], [2, 3], [1, 1, 2] };
        var every = Enum.GetValues<SafetensorsDType>().Select((d, i) => ($"t{i}.{d}", d, shapes[i % shapes.Length])).ToArray();
        var specs = new (string Name, (string, SafetensorsDType, long[])[] Tensors, Dictionary<string, string> Metadata)[]
        {
            ("empty", [], []),
            ("metadata-only", [], new() { ["format"] = "pt" }),
            ("every-dtype", every, new() { ["format"] = "pt", ["note"] = "ü \"quoted\" \\" }),
            ("empty-tensors-between", [("a", SafetensorsDType.U8, [0]), ("b", SafetensorsDType.F32, [2]), ("c", SafetensorsDType.BF16, [0, 5]), ("d", SafetensorsDType.U8, [1])], []),
            ("odd-names", [("model.layers.3.mlp.experts.0.gate_proj.weight", SafetensorsDType.F8E4M3, [4, 4]), ("ü", SafetensorsDType.F32, [1, 2]), ("quote\"d", SafetensorsDType.I8, [1]), ("a b\\c", SafetensorsDType.U16, [])], []),
            ("scalar", [("s", SafetensorsDType.F64, [])], []),
        };
        var seeds = new List<SeedFile>();
        foreach ((string name, (string, SafetensorsDType, long[])[] tensors, Dictionary<string, string> metadata) in specs)
        {
            var withData = tensors.Select((t, i) =>
            {
                var data = new byte[new SafetensorsTensorSpec(t.Item1, t.Item2, t.Item3).ByteLength];
                for (int k = 0; k < data.Length; k++)
                {
                    data[k] = (byte)((i * 31) + (k * 7) + 1);
                }

                return (t.Item1, t.Item2, t.Item3, data);
            }).ToArray();
            string path = dir.File($"seed-{name}.safetensors");
            using (SafetensorsWriter writer = SafetensorsWriter.Create(path, withData.Select(t => new SafetensorsTensorSpec(t.Item1, t.Item2, t.Item3)).ToList(), metadata))
            {
                foreach ((string tensor, _, _, byte[] data) in withData)
                {
                    writer.WriteTensor(tensor, data);
                }

                writer.Complete();
            }

            seeds.Add(new SeedFile(name, path, File.ReadAllBytes(path), withData, metadata));
        }

        return seeds;
    }

    // Index files as ShardIndex.Write writes them, naming the shards CheckpointDirectory provides (and one that is missing).
    private static byte[][] ShardIndexSeeds(TempDirectory dir)
    {
        var maps = new Dictionary<string, string>[]
        {
            new() { ["a"] = "model-00001-of-00002.safetensors", ["b"] = "model-00002-of-00002.safetensors", ["c"] = "model-00001-of-00002.safetensors" },
            new() { ["b"] = "model-00002-of-00002.safetensors" },
            new(),
            new() { ["a"] = "model-00001-of-00002.safetensors", ["gone"] = "model-00003-of-00003.safetensors" },
        };
        return maps.Select((map, i) =>
        {
            string path = dir.File($"index{i}.json");
            new ShardIndex(map, 1234 * i).Write(path);
            return File.ReadAllBytes(path);
        }).ToArray();
    }

    // A directory with two shards: tensors a and c in the first, b in the second.
    private static string CheckpointDirectory(string path)
    {
        Directory.CreateDirectory(path);
        foreach ((string file, string[] tensors) in new[] { ("model-00001-of-00002.safetensors", new[] { "a", "c" }), ("model-00002-of-00002.safetensors", ["b"]) })
        {
            using SafetensorsWriter writer = SafetensorsWriter.Create(Path.Combine(path, file), tensors.Select(t => new SafetensorsTensorSpec(t, SafetensorsDType.F32, [2])).ToList());
            foreach (string t in tensors)
            {
                writer.WriteTensor<float>(t, [1f, 2f]);
            }

            writer.Complete();
        }

        return path;
    }
}
