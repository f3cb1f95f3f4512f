using System.Text.Json;
using System.Text.RegularExpressions;
using CudaFinetune.Errors;

namespace CudaFinetune.Tokenizers;

/// <summary>
/// The parts of a Hugging Face <c>tokenizer.json</c> this engine runs, read and checked before any of it reaches
/// Microsoft.ML.Tokenizers, which meets a malformed file with exceptions that say nothing of where the fault is. Every
/// problem is one <see cref="UserErrorException"/> line: <c>FILE: 'json.path' what is wrong</c>.
/// </summary>
internal sealed record TokenizerJson(
    string ModelType,
    bool ByteLevel,
    Dictionary<string, int> Vocab,
    IReadOnlyList<string> Merges,
    bool IgnoreMerges,
    Dictionary<string, int> AddedTokens,
    Regex PreTokenizer)
{
    /// <summary>How long the pre-tokenizer's regex may take on one text: real patterns take microseconds; a pattern that backtracks catastrophically would take hours.</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Ids above this are not a vocabulary (the largest real ones are ~260k).</summary>
    private const int MaxId = 10_000_000;

    /// <summary>GPT-2's pre-tokenization regex (a ByteLevel pre-tokenizer with use_regex and no Split before it).</summary>
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Reads <paramref name="json"/> (the bytes of the file at <paramref name="path"/>).</summary>
    public static TokenizerJson Read(byte[] json, string path)
    {
        UserErrorException Bad(string where, string problem) => new($"{path}: '{where}' {problem}");
        JsonDocument document;
        try
        {
            document = IO.StrictJson.Parse(json, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new UserErrorException($"{path}: not valid JSON ({e.Message})", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new UserErrorException($"{path}: must be a JSON object, found {Kind(root)}");
            }
            var model = Member(root, "model", JsonValueKind.Object, "model", Bad)
                ?? throw Bad("model", "is missing");
            string type = Member(model, "type", JsonValueKind.String, "model.type", Bad)?.GetString() ?? "";
            bool byteLevel = root.TryGetProperty("pre_tokenizer", out var pre) && pre.GetRawText().Contains("\"ByteLevel\"", StringComparison.Ordinal);
            if (type != "BPE" || !byteLevel)
            {
                throw new UserErrorException($"{path}: a {(type.Length > 0 ? type : "typeless")} tokenizer{(type == "BPE" ? " without byte-level pre-tokenization (e.g. SentencePiece-style BPE)" : "")} is not supported; byte-level BPE tokenizer.json (Llama 3) and tokenizer.model (SentencePiece, Llama 2) are");
            }
            bool ignoreMerges = Member(model, "ignore_merges", JsonValueKind.True, "model.ignore_merges", Bad, alsoAllowed: JsonValueKind.False) is { ValueKind: JsonValueKind.True };
            var vocab = ReadVocab(model, ignoreMerges, Bad);
            var merges = ignoreMerges ? [] : ReadMerges(model, vocab, Bad);
            var added = ReadAddedTokens(root, Bad);
            var regex = ReadPreTokenizer(root, Bad);
            return new TokenizerJson(type, byteLevel, vocab, merges, ignoreMerges, added, regex);
        }
    }

    /// <summary>The member <paramref name="name"/> of <paramref name="parent"/> (null when absent or null), which must be of <paramref name="kind"/>.</summary>
    private static JsonElement? Member(JsonElement parent, string name, JsonValueKind kind, string where, Func<string, string, UserErrorException> bad,
        JsonValueKind? alsoAllowed = null)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind == kind || value.ValueKind == alsoAllowed ? value : throw bad(where, $"must be {Describe(kind)}, found {Kind(value)}");
    }

    private static Dictionary<string, int> ReadVocab(JsonElement model, bool ignoreMerges, Func<string, string, UserErrorException> bad)
    {
        var vocab = Member(model, "vocab", JsonValueKind.Object, "model.vocab", bad) ?? throw bad("model.vocab", "is missing");
        var tokens = new Dictionary<string, int>(StringComparer.Ordinal);
        var byId = new Dictionary<int, string>();
        foreach (var entry in vocab.EnumerateObject())
        {
            string where = $"model.vocab[{Quote(entry.Name)}]";
            if (entry.Name.Length == 0)
            {
                throw bad("model.vocab", "has an empty token");
            }
            int id = Id(entry.Value, where, bad);
            if (!tokens.TryAdd(entry.Name, id))
            {
                throw bad("model.vocab", $"has the token {Quote(entry.Name)} twice");
            }
            if (!byId.TryAdd(id, entry.Name))
            {
                throw bad("model.vocab", $"gives id {id} to both {Quote(byId[id])} and {Quote(entry.Name)}");
            }
        }
        if (tokens.Count == 0)
        {
            throw bad("model.vocab", "is empty");
        }
        if (ignoreMerges)
        {
            // Run as a tiktoken encoding, whose ranks are byte strings: every token must map back to bytes, and every
            // single byte must be a token, or some text could not be encoded at all.
            foreach (string token in tokens.Keys)
            {
                int outside = token.AsSpan().IndexOfAnyExcept(ByteLevelAlphabet.Characters);
                if (outside >= 0)
                {
                    throw bad($"model.vocab[{Quote(token)}]", $"has the character U+{(int)token[outside]:X4}, outside the byte-level alphabet (ignore_merges needs byte-level tokens)");
                }
            }
            for (int b = 0; b < 256; b++)
            {
                string single = ByteLevelAlphabet.CharacterOf((byte)b).ToString();
                if (!tokens.ContainsKey(single))
                {
                    throw bad("model.vocab", $"has no token for byte 0x{b:X2} ({Quote(single)}); ignore_merges needs every byte");
                }
            }
        }
        return tokens;
    }

    /// <summary>The merges as "a b"; each side and the merged token must be in the vocabulary, as transformers requires.</summary>
    private static List<string> ReadMerges(JsonElement model, Dictionary<string, int> vocab, Func<string, string, UserErrorException> bad)
    {
        var merges = Member(model, "merges", JsonValueKind.Array, "model.merges", bad);
        var result = new List<string>();
        if (merges is not { } list)
        {
            return result;
        }
        int i = 0;
        foreach (var merge in list.EnumerateArray())
        {
            string where = $"model.merges[{i++}]";
            if (merge.ValueKind == JsonValueKind.String)
            {
                string text = merge.GetString()!;
                int space = text.IndexOf(' ', StringComparison.Ordinal);
                if (space <= 0 || space == text.Length - 1 || text.IndexOf(' ', space + 1) >= 0)
                {
                    throw bad(where, $"must be two tokens separated by one space, found {Quote(text)}");
                }
                result.Add(text);
            }
            else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String
                && merge[0].GetString()!.Length > 0 && merge[1].GetString()!.Length > 0
                && !merge[0].GetString()!.Contains(' ', StringComparison.Ordinal) && !merge[1].GetString()!.Contains(' ', StringComparison.Ordinal))
            {
                result.Add($"{merge[0].GetString()} {merge[1].GetString()}");
            }
            else
            {
                throw bad(where, $"must be \"a b\" or [\"a\", \"b\"] (two tokens without spaces), found {Kind(merge)}");
            }
            string pair = result[^1];
            int cut = pair.IndexOf(' ', StringComparison.Ordinal);
            foreach (string token in (ReadOnlySpan<string>)[pair[..cut], pair[(cut + 1)..], string.Concat(pair.AsSpan(0, cut), pair.AsSpan(cut + 1))])
            {
                if (!vocab.ContainsKey(token))
                {
                    throw bad(where, $"merges {Quote(pair)}, but {Quote(token)} is not in model.vocab");
                }
            }
        }
        return result;
    }

    /// <summary>
    /// The added tokens by content. A token listed twice with the same id is taken once, as transformers does; the same
    /// content with two ids, or one id for two contents, is refused.
    /// </summary>
    private static Dictionary<string, int> ReadAddedTokens(JsonElement root, Func<string, string, UserErrorException> bad)
    {
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (Member(root, "added_tokens", JsonValueKind.Array, "added_tokens", bad) is not { } list)
        {
            return added;
        }
        var byId = new Dictionary<int, string>();
        int i = 0;
        foreach (var token in list.EnumerateArray())
        {
            string where = $"added_tokens[{i++}]";
            if (token.ValueKind != JsonValueKind.Object)
            {
                throw bad(where, $"must be an object with \"id\" and \"content\", found {Kind(token)}");
            }
            int id = Id(token.TryGetProperty("id", out var idValue) ? idValue : default, $"{where}.id", bad);
            string content = Member(token, "content", JsonValueKind.String, $"{where}.content", bad)?.GetString() ?? throw bad($"{where}.content", "is missing");
            if (content.Length == 0)
            {
                throw bad($"{where}.content", "is empty");
            }
            if (added.TryGetValue(content, out int earlier))
            {
                if (earlier != id)
                {
                    throw bad(where, $"repeats {Quote(content)} with id {id} (listed before with id {earlier})");
                }
                continue;
            }
            if (byId.TryGetValue(id, out string? other))
            {
                throw bad(where, $"gives id {id} to {Quote(content)}, which {Quote(other)} already has");
            }
            added.Add(content, id);
            byId.Add(id, content);
        }
        return added;
    }

    /// <summary>The Split pre-tokenizer's regex (alone or in a Sequence), else GPT-2's; compiled with <see cref="MatchTimeout"/>.</summary>
    private static Regex ReadPreTokenizer(JsonElement root, Func<string, string, UserErrorException> bad)
    {
        string pattern = Gpt2Pattern, where = "";
        if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind == JsonValueKind.Object)
        {
            bool sequence = pre.TryGetProperty("pretokenizers", out var list) && list.ValueKind == JsonValueKind.Array;
            var steps = sequence ? [.. list.EnumerateArray()] : new[] { pre };
            for (int i = 0; i < steps.Length; i++)
            {
                var step = steps[i];
                if (step.ValueKind == JsonValueKind.Object && step.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String
                    && type.GetString() == "Split" && step.TryGetProperty("pattern", out var p) && p.ValueKind == JsonValueKind.Object
                    && p.TryGetProperty("Regex", out var regex))
                {
                    where = sequence ? $"pre_tokenizer.pretokenizers[{i}].pattern.Regex" : "pre_tokenizer.pattern.Regex";
                    pattern = regex.ValueKind == JsonValueKind.String ? regex.GetString()! : throw bad(where, $"must be a string, found {Kind(regex)}");
                    break;
                }
            }
        }
        try
        {
            return new Regex(pattern, RegexOptions.Compiled, MatchTimeout);
        }
        catch (ArgumentException e)
        {
            throw bad(where, $"is not a regular expression .NET can run: {e.Message}");
        }
    }

    private static int Id(JsonElement value, string where, Func<string, string, UserErrorException> bad)
        => value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int id) && id is >= 0 and <= MaxId
            ? id
            : throw bad(where, $"must be an integer from 0 to {MaxId}, found {(value.ValueKind == JsonValueKind.Undefined ? "nothing" : Kind(value))}");

    /// <summary>A JSON value for a message: the value itself when short, else its kind.</summary>
    private static string Kind(JsonElement value)
    {
        string raw = value.GetRawText();
        return raw.Length <= 40 ? raw : value.ValueKind switch
        {
            JsonValueKind.Object => "an object",
            JsonValueKind.Array => "an array",
            JsonValueKind.String => "a long string",
            _ => $"{value.ValueKind}".ToLowerInvariant(),
        };
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.True or JsonValueKind.False => "true or false",
        _ => kind.ToString().ToLowerInvariant(),
    };

    /// <summary>A token in a message: JSON-quoted (so control characters and spaces show), cut when long.</summary>
    private static string Quote(string token)
        => $"\"{JsonEncodedText.Encode(token.Length > 40 ? token[..40] + "…" : token, System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping)}\"";
}
