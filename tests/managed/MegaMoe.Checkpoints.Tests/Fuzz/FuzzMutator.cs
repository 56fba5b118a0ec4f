using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace MegaMoe.Checkpoints.Tests.Fuzz;

/// <summary>SplitMix64: a tiny PRNG whose sequence is fixed by this file alone (not by the .NET version).</summary>
internal struct FuzzRandom
{
    private ulong _state;

    public FuzzRandom(ulong seed, long iteration) => _state = seed ^ ((ulong)iteration * 0x9E3779B97F4A7C15UL) ^ 0xD1B54A32D192ED03UL;

    public ulong NextU64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n); n must be positive.</summary>
    public int Next(int n) => (int)(NextU64() % (ulong)n);

    /// <summary>True with probability percent / 100.</summary>
    public bool Chance(int percent) => Next(100) < percent;

    public T Pick<T>(IReadOnlyList<T> items) => items[Next(items.Count)];
}

/// <summary>
/// Mutations of a safetensors file (8-byte length, JSON header, data) or of a JSON document: edits of JSON tokens chosen
/// for what the reader checks (dtype strings, shape entries, data_offsets, duplicate keys, nesting, bad UTF-8 and escapes),
/// then byte-level havoc (bit flips, inserts, deletes, truncation, length-field values around every limit).
/// Everything is drawn from one <see cref="FuzzRandom"/>, so (seed, iteration) names an input exactly.
/// </summary>
internal static class FuzzMutator
{
    public const int MaxInputBytes = 1 << 16;

    private static readonly string[] Numbers =
    [
        "0", "1", "2", "3", "4", "7", "8", "9", "16", "255", "256", "-1", "-0", "-8", "0.0", "1.5", "1e2", "1E1", "1e-5", "1e400", "-1e400",
        "00", "01", "+1", "2147483647", "2147483648", "4294967295", "4294967296", "4294967297", "9007199254740993",
        "3037000500", "3037000499", "4611686018427387904", "2305843009213693952", "1152921504606846976",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "18446744073709551615",
        "18446744073709551616", "100000000", "100000001", new string('9', 400),
    ];

    private static readonly string[] Strings =
    [
        "\"BOOL\"", "\"U8\"", "\"I8\"", "\"F8_E5M2\"", "\"F8_E4M3\"", "\"I16\"", "\"U16\"", "\"F16\"", "\"BF16\"", "\"I32\"", "\"U32\"",
        "\"F32\"", "\"F64\"", "\"I64\"", "\"U64\"", "\"F7\"", "\"bf16\"", "\"BF16 \"", "\"F8_E4M3FN\"", "\"I128\"", "\"\\u0042F16\"",
        "\"BOOL\\u0000\"", "\"\"", "\"__metadata__\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"x\"", "\"\\ud800\"",
        "\"\\udc00\\ud800\"", "\"\\ud83d\\ude00\"", "\"\\u00\"", "\"\\x\"", "\"a\\\"b\"", "\"\u00fc\"", "\"a\nb\"", "\"\t\"", "\"a/b\"", "\"..\"", "\".\"",
        "\"model.safetensors\"", "\"model-00001-of-00002.safetensors\"", "\"model.safetensors.index.json\"", "\"total_size\"", "\"weight_map\"",
        "\"metadata\"", "\"" + new string('a', 1000) + "\"",
    ];

    private static readonly string[] Values =
    [
        "null", "true", "false", "{}", "[]", "[[]]", "\"\"", "0", "-1", "{\"a\":1}", "[0,0]", "[1,0]", "[0]", "[0,0,0]", "[\"0\",\"1\"]",
        "[4611686018427387904,4]", "[4294967296,4294967296]", "[3037000500,3037000500]", "[9223372036854775807]",
        "[0,9223372036854775807]", "[9223372036854775807,0]", "[2147483648]", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]",
        "[9223372036854775807,9223372036854775807]", "[0,18446744073709551615]",
    ];

    private static readonly byte[][] BadBytes =
    [
        [0xFF], [0xFE], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80], [0x80], [0xF8, 0x88, 0x80, 0x80, 0x80],
        [0x00], [0x01], [0x7F], [(byte)'"'], [(byte)'\\'],
    ];

    private static readonly byte[] Structural = "{}[],:\"\\ -0123456789eE.tfn"u8.ToArray();

    /// <summary>A mutated safetensors file derived from one of the <paramref name="seeds"/> (each a valid file).</summary>
    public static byte[] MutateSafetensors(ref FuzzRandom r, IReadOnlyList<byte[]> seeds)
    {
        byte[] seed = r.Pick(seeds);
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(seed);
        byte[] header = seed[8..(8 + headerLength)];
        byte[] data = seed[(8 + headerLength)..];

        int jsonEdits = r.Pick(JsonEditCounts);
        for (int i = 0; i < jsonEdits; i++)
        {
            header = MutateJson(ref r, header, seeds);
        }

        if (r.Chance(15))
        {
            header = Concat(header, Enumerable.Repeat((byte)' ', r.Next(9)).ToArray());
        }

        data = r.Next(10) switch
        {
            0 or 1 => ResizeToANumberInTheHeader(ref r, header, data),
            2 => data[..r.Next(data.Length + 1)],
            3 => Concat(data, RandomBytes(ref r, 1 + r.Next(16))),
            _ => data,
        };

        ulong declared = r.Chance(85) ? (ulong)header.Length : InterestingLength(ref r, header.Length, 8 + header.Length + data.Length);
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, declared);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);

        int byteEdits = r.Chance(50) ? 0 : 1 + r.Next(4);
        for (int i = 0; i < byteEdits; i++)
        {
            file = MutateBytes(ref r, file, safetensors: true);
        }

        return file.Length > MaxInputBytes ? file[..MaxInputBytes] : file;
    }

    /// <summary>A mutated JSON document (a shard index) derived from one of the <paramref name="seeds"/>.</summary>
    public static byte[] MutateJsonDocument(ref FuzzRandom r, IReadOnlyList<byte[]> seeds)
    {
        byte[] json = r.Pick(seeds);
        int jsonEdits = 1 + r.Next(3);
        for (int i = 0; i < jsonEdits; i++)
        {
            json = MutateJson(ref r, json, seeds);
        }

        int byteEdits = r.Chance(70) ? 0 : 1 + r.Next(3);
        for (int i = 0; i < byteEdits; i++)
        {
            json = MutateBytes(ref r, json, safetensors: false);
        }

        return json.Length > MaxInputBytes ? json[..MaxInputBytes] : json;
    }

    private static readonly int[] JsonEditCounts = [0, 1, 1, 1, 2, 2, 3, 4];

    private static byte[] MutateJson(ref FuzzRandom r, byte[] json, IReadOnlyList<byte[]> seeds)
    {
        List<Token> tokens = Tokenize(json);
        if (tokens.Count == 0)
        {
            return Insert(json, r.Next(json.Length + 1), Ascii(r.Pick(Values)));
        }

        Token t = r.Pick(tokens);
        switch (r.Next(16))
        {
            case 0: // an interesting number in place of a number (or of any token)
                t = PickKind(ref r, tokens, TokenKind.Number) ?? t;
                return Replace(json, t, Ascii(r.Pick(Numbers)));
            case 1: // a number nudged: offsets one off, overlapping, past the end; shapes one larger
                if (PickKind(ref r, tokens, TokenKind.Number) is { } n && long.TryParse(Text(json, n), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v))
                {
                    long[] deltas = [-1, 1, -2, 2, -4, 4, -8, 8, 64, -64, 1L << 32, -(1L << 32), v, -v];
                    return Replace(json, n, Ascii(unchecked(v + r.Pick(deltas)).ToString(CultureInfo.InvariantCulture)));
                }

                return json;
            case 2: // a number copied from elsewhere in the header (offsets equal to another tensor's: overlap, duplicate)
                if (PickKind(ref r, tokens, TokenKind.Number) is { } to && PickKind(ref r, tokens, TokenKind.Number) is { } from)
                {
                    return Replace(json, to, json[from.Start..from.End]);
                }

                return json;
            case 3: // an interesting string (dtype names, reserved keys, escapes, lone surrogates)
                t = PickKind(ref r, tokens, TokenKind.String) ?? t;
                return Replace(json, t, Encoding.UTF8.GetBytes(r.Pick(Strings)));
            case 4: // invalid UTF-8 (or a quote, a backslash) inside a string
                t = PickKind(ref r, tokens, TokenKind.String) ?? t;
                return Insert(json, t.Start + 1 + r.Next(Math.Max(1, t.Length - 1)), r.Pick(BadBytes));
            case 5: // a value of another JSON kind
                (int start, int end) = ValueSpan(tokens, r.Next(tokens.Count));
                return Replace(json, start, end, Ascii(r.Pick(Values)));
            case 6: // a member repeated (duplicate tensor name, duplicate field) or renamed
                return DuplicateMember(ref r, json, tokens);
            case 7: // deep nesting around a value
                {
                    (int s, int e) = ValueSpan(tokens, r.Next(tokens.Count));
                    int depth = r.Pick(NestingDepths);
                    bool objects = r.Chance(30);
                    string open = objects ? "{\"a\":" : "[", close = objects ? "}" : "]";
                    byte[] wrapped = Concat(Ascii(string.Concat(Enumerable.Repeat(open, depth))), json[s..e], Ascii(string.Concat(Enumerable.Repeat(close, depth))));
                    return Replace(json, s, e, wrapped);
                }

            case 8: // a token deleted
                return Replace(json, t, []);
            case 9: // a token repeated after a comma (an extra shape entry, a third offset)
                return Insert(json, t.End, Concat(","u8.ToArray(), json[t.Start..t.End]));
            case 10: // two tokens swapped (reversed data_offsets, dtype and name exchanged)
                {
                    Token u = r.Pick(tokens);
                    if (u.Start == t.Start)
                    {
                        return json;
                    }

                    (Token a, Token b) = u.Start < t.Start ? (u, t) : (t, u);
                    if (a.End > b.Start)
                    {
                        return json;
                    }

                    return Concat(json[..a.Start], json[b.Start..b.End], json[a.End..b.Start], json[a.Start..a.End], json[b.End..]);
                }

            case 11: // an unknown field added to an object
                if (PickKind(ref r, tokens, TokenKind.OpenObject) is { } o)
                {
                    return Insert(json, o.End, Ascii(r.Pick(["\"extra\":1,", "\"dtype\":\"U8\",", "\"shape\":[],", "\"data_offsets\":[0,0],", "\"x\":{},"])));
                }

                return json;
            case 12: // a structural byte inserted or overwritten
                {
                    int at = r.Next(json.Length + 1);
                    byte b = Structural[r.Next(Structural.Length)];
                    return r.Chance(50) || at == json.Length ? Insert(json, at, [b]) : Replace(json, at, at + 1, [b]);
                }

            case 13: // a tensor entry added whose offsets continue or overlap the data
                return Insert(json, 1 < json.Length ? 1 : json.Length, Ascii(r.Pick(ExtraEntries)));
            case 14: // a token from another seed spliced in
                {
                    byte[] other = r.Pick(seeds);
                    List<Token> otherTokens = Tokenize(other);
                    if (otherTokens.Count == 0)
                    {
                        return json;
                    }

                    (int s, int e) = ValueSpan(otherTokens, r.Next(otherTokens.Count));
                    return Replace(json, t, other[s..e]);
                }

            default: // the whole header replaced by a well-known edge
                return Ascii(r.Pick(WholeHeaders));
        }
    }

    private static readonly int[] NestingDepths = [1, 2, 14, 15, 16, 17, 63, 64, 65, 200, 1000];

    private static readonly string[] ExtraEntries =
    [
        "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},",
        "\"z\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},",
        "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[3,3]},",
        "\"z\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},",
        "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[9223372036854775807,9223372036854775807]},",
        "\"z\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9223372036854775806,9223372036854775807]},",
        "\"z\":{\"dtype\":\"U8\",\"shape\":[0,9223372036854775807],\"data_offsets\":[0,0]},",
        "\"__metadata__\":{},",
        "\"__metadata__\":{\"a\":\"b\",\"a\":\"c\"},",
        "\"__metadata__\":{\"a\":{\"b\":\"c\"}},",
    ];

    private static readonly string[] WholeHeaders =
    [
        "{}", "{ }", "[]", "{", "}", "\"\"", "null", "{}{}", "{},", "{\"a\":1}", "{\"__metadata__\":{}}", "{\"__metadata__\":null}", "\u00ef\u00bb\u00bf{}",
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}", "{\"weight_map\":{}}", "{\"weight_map\":{\"a\":\"b\"}}",
        "{\"metadata\":{\"total_size\":\"1\"},\"weight_map\":{}}", "{\"metadata\":{\"total_size\":1.5},\"weight_map\":{}}",
        "{\"metadata\":{\"total_size\":null},\"weight_map\":{}}", "{\"metadata\":[],\"weight_map\":{}}",
    ];

    private static byte[] MutateBytes(ref FuzzRandom r, byte[] file, bool safetensors)
    {
        if (file.Length == 0)
        {
            return RandomBytes(ref r, 1 + r.Next(8));
        }

        int at = r.Next(file.Length);
        switch (r.Next(safetensors ? 9 : 7))
        {
            case 0:
                {
                    byte[] copy = (byte[])file.Clone();
                    copy[at] ^= (byte)(1 << r.Next(8));
                    return copy;
                }

            case 1:
                {
                    byte[] copy = (byte[])file.Clone();
                    copy[at] = r.Chance(50) ? Structural[r.Next(Structural.Length)] : r.Pick(BadBytes)[0];
                    return copy;
                }

            case 2:
                return Insert(file, r.Next(file.Length + 1), r.Chance(50) ? r.Pick(BadBytes) : RandomBytes(ref r, 1 + r.Next(8)));
            case 3:
                return Replace(file, at, Math.Min(file.Length, at + 1 + r.Next(16)), []);
            case 4: // truncation anywhere
                return file[..r.Next(file.Length)];
            case 5: // a chunk duplicated
                {
                    int end = Math.Min(file.Length, at + 1 + r.Next(64));
                    return Insert(file, r.Next(file.Length + 1), file[at..end]);
                }

            case 6: // a chunk overwritten with random bytes
                {
                    byte[] copy = (byte[])file.Clone();
                    int n = Math.Min(copy.Length - at, 1 + r.Next(8));
                    RandomBytes(ref r, n).CopyTo(copy, at);
                    return copy;
                }

            default: // the length field: around the header, the file, 2^31, 2^32, 2^63, the 100 MB limit, "negative"
                {
                    if (file.Length < 8)
                    {
                        return file;
                    }

                    byte[] copy = (byte[])file.Clone();
                    int current = (int)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(copy), (ulong)copy.Length);
                    BinaryPrimitives.WriteUInt64LittleEndian(copy, InterestingLength(ref r, current, copy.Length));
                    return copy;
                }
        }
    }

    private static ulong InterestingLength(ref FuzzRandom r, long header, long file)
    {
        ulong h = (ulong)header, f = (ulong)file;
        ulong[] values = unchecked(
        [
            0, 1, 2, 3, 7, 8, h - 1, h + 1, h + 7, h + 8, f - 8, f - 7, f, 100_000_000, 100_000_001, int.MaxValue, 1UL << 31,
            uint.MaxValue, 1UL << 32, (1UL << 32) + h, (1UL << 31) + h, long.MaxValue, 1UL << 63, (1UL << 63) + h, ulong.MaxValue,
            unchecked(0UL - h), ulong.MaxValue - 7, r.NextU64(), (ulong)r.Next((int)Math.Max(1, file + 1)),
        ]);
        return r.Pick(values);
    }

    // Data of a length that some number in the header names: often exactly the end of the last tensor after an edit.
    private static byte[] ResizeToANumberInTheHeader(ref FuzzRandom r, byte[] header, byte[] data)
    {
        List<Token> numbers = Tokenize(header).Where(t => t.Kind == TokenKind.Number).ToList();
        if (numbers.Count == 0 || !int.TryParse(Text(header, r.Pick(numbers)), NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            || n > MaxInputBytes / 2)
        {
            return data;
        }

        var resized = new byte[n];
        data.AsSpan(0, Math.Min(n, data.Length)).CopyTo(resized);
        for (int i = data.Length; i < n; i++)
        {
            resized[i] = (byte)(i * 37);
        }

        return resized;
    }

    // A member "key": value (its value balanced when an object or array) repeated or renamed, before the closing brace.
    private static byte[] DuplicateMember(ref FuzzRandom r, byte[] json, List<Token> tokens)
    {
        var keys = new List<int>();
        for (int i = 0; i + 2 < tokens.Count; i++)
        {
            if (tokens[i].Kind == TokenKind.String && tokens[i + 1].Kind == TokenKind.Colon)
            {
                keys.Add(i);
            }
        }

        if (keys.Count == 0)
        {
            return json;
        }

        int k = r.Pick(keys);
        (_, int valueEnd) = ValueSpan(tokens, k + 2);
        byte[] member = json[tokens[k].Start..valueEnd];
        if (r.Chance(30))
        {
            byte[] key = json[tokens[k].Start..tokens[k].End];
            member = Concat(key[..^1], "2\""u8.ToArray(), json[tokens[k].End..valueEnd]);
        }

        return Insert(json, valueEnd, Concat(","u8.ToArray(), member));
    }

    // The tokens of one value starting at token i: the token alone, or through its matching close bracket.
    private static (int Start, int End) ValueSpan(List<Token> tokens, int i)
    {
        Token first = tokens[i];
        if (first.Kind is not (TokenKind.OpenObject or TokenKind.OpenArray))
        {
            return (first.Start, first.End);
        }

        int depth = 0;
        for (int j = i; j < tokens.Count; j++)
        {
            depth += tokens[j].Kind switch { TokenKind.OpenObject or TokenKind.OpenArray => 1, TokenKind.Close => -1, _ => 0 };
            if (depth == 0)
            {
                return (first.Start, tokens[j].End);
            }
        }

        return (first.Start, tokens[^1].End);
    }

    private static Token? PickKind(ref FuzzRandom r, List<Token> tokens, TokenKind kind)
    {
        int count = tokens.Count(t => t.Kind == kind);
        if (count == 0)
        {
            return null;
        }

        int n = r.Next(count);
        foreach (Token t in tokens)
        {
            if (t.Kind == kind && n-- == 0)
            {
                return t;
            }
        }

        return null;
    }

    internal enum TokenKind
    {
        String,
        Number,
        Literal,
        OpenObject,
        OpenArray,
        Close,
        Colon,
        Comma,
        Other,
    }

    internal readonly record struct Token(int Start, int End, TokenKind Kind)
    {
        public int Length => End - Start;
    }

    // A lenient tokenizer: any bytes give some tokens, so edits still apply to already broken JSON.
    internal static List<Token> Tokenize(byte[] s)
    {
        var tokens = new List<Token>();
        int i = 0;
        while (i < s.Length)
        {
            byte c = s[i];
            int j = i + 1;
            TokenKind kind;
            switch (c)
            {
                case (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n':
                    i++;
                    continue;
                case (byte)'"':
                    while (j < s.Length && s[j] != '"')
                    {
                        j += s[j] == '\\' ? 2 : 1;
                    }

                    j = Math.Min(j + 1, s.Length);
                    kind = TokenKind.String;
                    break;
                case (byte)'-' or (>= (byte)'0' and <= (byte)'9'):
                    while (j < s.Length && (char.IsAsciiDigit((char)s[j]) || s[j] is (byte)'.' or (byte)'e' or (byte)'E' or (byte)'+' or (byte)'-'))
                    {
                        j++;
                    }

                    kind = TokenKind.Number;
                    break;
                case >= (byte)'a' and <= (byte)'z':
                    while (j < s.Length && s[j] is >= (byte)'a' and <= (byte)'z')
                    {
                        j++;
                    }

                    kind = TokenKind.Literal;
                    break;
                default:
                    kind = c switch
                    {
                        (byte)'{' => TokenKind.OpenObject,
                        (byte)'[' => TokenKind.OpenArray,
                        (byte)'}' or (byte)']' => TokenKind.Close,
                        (byte)':' => TokenKind.Colon,
                        (byte)',' => TokenKind.Comma,
                        _ => TokenKind.Other,
                    };
                    break;
            }

            tokens.Add(new Token(i, j, kind));
            i = j;
        }

        return tokens;
    }

    private static string Text(byte[] json, Token t) => Encoding.Latin1.GetString(json, t.Start, t.Length);

    private static byte[] Ascii(string s) => Encoding.UTF8.GetBytes(s);

    private static byte[] RandomBytes(ref FuzzRandom r, int n)
    {
        var bytes = new byte[n];
        for (int i = 0; i < n; i++)
        {
            bytes[i] = (byte)r.NextU64();
        }

        return bytes;
    }

    private static byte[] Replace(byte[] s, Token t, byte[] with) => Replace(s, t.Start, t.End, with);

    private static byte[] Replace(byte[] s, int start, int end, byte[] with) => Concat(s[..start], with, s[end..]);

    private static byte[] Insert(byte[] s, int at, byte[] what) => Concat(s[..at], what, s[at..]);

    private static byte[] Concat(params byte[][] parts)
    {
        var result = new byte[parts.Sum(p => p.Length)];
        int at = 0;
        foreach (byte[] p in parts)
        {
            p.CopyTo(result, at);
            at += p.Length;
        }

        return result;
    }
}
