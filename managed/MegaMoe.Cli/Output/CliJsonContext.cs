using System.Text.Json.Serialization;
using MegaMoe.Cli.Bench;
using MegaMoe.Cli.Commands;
using MegaMoe.Cli.Verify;

namespace MegaMoe.Cli.Output;

/// <summary>
/// Source-generated serialization of every --json document: no reflection, so the NativeAOT executable writes the same
/// JSON as the managed one. Names are snake_case, like bench/results.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    WriteIndented = true,
    UseStringEnumConverter = true)]
[JsonSerializable(typeof(ErrorReport))]
[JsonSerializable(typeof(InfoReport))]
[JsonSerializable(typeof(RunReport))]
[JsonSerializable(typeof(BenchDocument))]
[JsonSerializable(typeof(VerifyReport))]
[JsonSerializable(typeof(ConvertReport))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
