using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace MegaMoe.Cli.Output;

/// <summary>Writes one --json document to standard output.</summary>
internal static class JsonOutput
{
    // The default encoder escapes '+', '<' and '>' for HTML; these documents go to terminals, files and scripts.
    private static readonly CliJsonContext Context = new(new JsonSerializerOptions(CliJsonContext.Default.Options)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    public static void Write<T>(CliConsole console, T document, JsonTypeInfo<T> typeInfo)
    {
        console.Output.WriteLine(Serialize(document, typeInfo));
        console.Output.Flush();
    }

    public static string Serialize<T>(T document, JsonTypeInfo<T> typeInfo) =>
        JsonSerializer.Serialize(document, (JsonTypeInfo<T>)Context.GetTypeInfo(typeInfo.Type)!);
}
