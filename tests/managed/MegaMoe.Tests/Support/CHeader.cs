using System.Globalization;
using System.Text.RegularExpressions;

namespace MegaMoe.Tests.Support;

/// <summary>A parameter or struct field of the C header: its type (without <c>const</c>) and name.</summary>
/// <param name="Type">E.g. <c>megamoe_tensor_t*</c>, <c>int64_t[4]</c>.</param>
/// <param name="Name">E.g. <c>out_context</c>.</param>
public sealed record CDeclaration(string Type, string Name);

/// <summary>A function of the C header.</summary>
/// <param name="Name">The exported name.</param>
/// <param name="ReturnType">The return type, without <c>const</c>.</param>
/// <param name="Parameters">The parameters in order.</param>
public sealed record CFunction(string Name, string ReturnType, IReadOnlyList<CDeclaration> Parameters);

/// <summary>
/// Just enough of a C parser for <c>megamoe.h</c>: <c>MEGAMOE_API</c> functions, <c>typedef struct</c> fields,
/// <c>typedef enum</c> values and integer <c>#define</c>s. The header's regular style makes regular expressions enough.
/// </summary>
public sealed partial class CHeader
{
    private CHeader(string text)
    {
        string code = LineComment().Replace(BlockComment().Replace(text, " "), " ");
        var defines = new Dictionary<string, string>();
        foreach (Match m in Define().Matches(code))
        {
            // MEGAMOE_API has one definition per platform; the last one (the non-Windows one) wins.
            defines[m.Groups["name"].Value] = m.Groups["value"].Value.Trim();
        }

        Defines = defines;
        Functions = Function().Matches(code).Select(m => new CFunction(
            m.Groups["name"].Value,
            Normalize(m.Groups["ret"].Value),
            ParseParameters(m.Groups["params"].Value))).ToList();
        Structs = Struct().Matches(code).ToDictionary(
            m => m.Groups["name"].Value,
            m => (IReadOnlyList<CDeclaration>)m.Groups["body"].Value.Split(';', StringSplitOptions.TrimEntries)
                .Where(field => field.Length > 0).Select(ParseField).ToList());
        Enums = Enum().Matches(code).ToDictionary(
            m => m.Groups["name"].Value,
            m => (IReadOnlyDictionary<string, long>)m.Groups["body"].Value.Split(',', StringSplitOptions.TrimEntries)
                .Where(entry => entry.Length > 0)
                .Select(entry => entry.Split('=', StringSplitOptions.TrimEntries))
                .ToDictionary(parts => parts[0], parts => long.Parse(parts[1], CultureInfo.InvariantCulture)));
    }

    /// <summary>Object-like macros: name to replacement text.</summary>
    public IReadOnlyDictionary<string, string> Defines { get; }

    /// <summary>Every <c>MEGAMOE_API</c> function, in header order.</summary>
    public IReadOnlyList<CFunction> Functions { get; }

    /// <summary>typedef'd struct name (<c>megamoe_tensor_t</c>) to its fields in order.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<CDeclaration>> Structs { get; }

    /// <summary>typedef'd enum name (<c>megamoe_status_t</c>) to its constants.</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> Enums { get; }

    /// <summary>The copy of the header placed beside the test assembly by the build.</summary>
    public static CHeader Load()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "megamoe.h");
        return new CHeader(File.ReadAllText(path));
    }

    /// <summary>The integer value of a macro such as <c>1u</c> or <c>4</c>.</summary>
    public long IntegerValue(string macro) =>
        long.Parse(Defines[macro].TrimEnd('u', 'U'), CultureInfo.InvariantCulture);

    private static string Normalize(string type) => ConstKeyword().Replace(type, string.Empty).Replace(" ", string.Empty, StringComparison.Ordinal);

    private static List<CDeclaration> ParseParameters(string parameters)
    {
        string trimmed = parameters.Trim();
        return trimmed == "void"
            ? []
            : trimmed.Split(',', StringSplitOptions.TrimEntries).Select(ParseDeclaration).ToList();
    }

    // "const megamoe_tensor_t* x" -> ("megamoe_tensor_t*", "x")
    private static CDeclaration ParseDeclaration(string declaration)
    {
        Match m = TrailingName().Match(declaration);
        return new CDeclaration(Normalize(m.Groups["type"].Value), m.Groups["name"].Value);
    }

    // "int64_t shape[MEGAMOE_MAX_RANK]" -> ("int64_t[MEGAMOE_MAX_RANK]", "shape")
    private static CDeclaration ParseField(string field)
    {
        Match array = ArrayField().Match(field);
        if (!array.Success)
        {
            return ParseDeclaration(field);
        }

        CDeclaration element = ParseDeclaration(array.Groups["decl"].Value);
        return element with { Type = $"{element.Type}[{array.Groups["length"].Value}]" };
    }

    [GeneratedRegex(@"/\*.*?\*/", RegexOptions.Singleline)]
    private static partial Regex BlockComment();

    [GeneratedRegex(@"//[^\r\n]*")]
    private static partial Regex LineComment();

    [GeneratedRegex(@"^#define\s+(?<name>\w+)\s+(?<value>[^\r\n]+)$", RegexOptions.Multiline)]
    private static partial Regex Define();

    [GeneratedRegex(@"MEGAMOE_API\s+(?<ret>[\w\s\*]+?)\s*\b(?<name>megamoe_\w+)\s*\((?<params>[^)]*)\)\s*;", RegexOptions.Singleline)]
    private static partial Regex Function();

    [GeneratedRegex(@"typedef\s+struct\s+\w+\s*\{(?<body>[^}]*)\}\s*(?<name>\w+)\s*;", RegexOptions.Singleline)]
    private static partial Regex Struct();

    [GeneratedRegex(@"typedef\s+enum\s+\w+\s*\{(?<body>[^}]*)\}\s*(?<name>\w+)\s*;", RegexOptions.Singleline)]
    private static partial Regex Enum();

    [GeneratedRegex(@"^(?<type>.*?[\w\*])\s*\b(?<name>\w+)$", RegexOptions.Singleline)]
    private static partial Regex TrailingName();

    [GeneratedRegex(@"^(?<decl>.*)\[(?<length>\w+)\]$", RegexOptions.Singleline)]
    private static partial Regex ArrayField();

    [GeneratedRegex(@"\bconst\b")]
    private static partial Regex ConstKeyword();
}
