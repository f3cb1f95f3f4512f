using System.Text.Json;
using System.Text.RegularExpressions;
using CudaFinetune.Errors;
using CudaFinetune.IO;

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
        using JsonDocument document = JsonFields.Parse(json, path, new JsonDocumentOptions { MaxDepth = 64 });
        var root = JsonFields.Root(document, path);
        var model = root.Object("model");
        string type = model.OptionalString("type") ?? "";
        bool byteLevel = root.Member("pre_tokenizer").IsGiven && root.Member("pre_tokenizer").Raw.Contains("\"ByteLevel\"", StringComparison.Ordinal);
        if (type != "BPE" || !byteLevel)
        {
            throw new UserErrorException($"{path}: a {(type.Length > 0 ? type : "typeless")} tokenizer{(type == "BPE" ? " without byte-level pre-tokenization (e.g. SentencePiece-style BPE)" : "")} is not supported; byte-level BPE tokenizer.json (Llama 3) and tokenizer.model (SentencePiece, Llama 2) are");
        }
        bool ignoreMerges = model.OptionalBool("ignore_merges") ?? false;
        var vocab = ReadVocab(model, ignoreMerges);
        var merges = ignoreMerges ? [] : ReadMerges(model, vocab);
        var added = ReadAddedTokens(root);
        var regex = ReadPreTokenizer(root, path);
        return new TokenizerJson(type, byteLevel, vocab, merges, ignoreMerges, added, regex);
    }

    private static Dictionary<string, int> ReadVocab(JsonFields model, bool ignoreMerges)
    {
        var vocab = model.Object("vocab");
        var tokens = new Dictionary<string, int>(StringComparer.Ordinal);
        var byId = new Dictionary<int, string>();
        foreach (var (token, value) in vocab.Entries())
        {
            if (token.Length == 0)
            {
                throw vocab.Error("has an empty token");
            }
            int id = value.AsInt(0, MaxId);
            if (!tokens.TryAdd(token, id))
            {
                throw vocab.Error($"has the token {JsonFields.Quote(token)} twice");
            }
            if (!byId.TryAdd(id, token))
            {
                throw vocab.Error($"gives id {id} to both {JsonFields.Quote(byId[id])} and {JsonFields.Quote(token)}");
            }
        }
        if (tokens.Count == 0)
        {
            throw vocab.Error("is empty");
        }
        if (ignoreMerges)
        {
            // Run as a tiktoken encoding, whose ranks are byte strings: every token must map back to bytes, and every
            // single byte must be a token, or some text could not be encoded at all.
            foreach (var (token, value) in vocab.Entries())
            {
                int outside = token.AsSpan().IndexOfAnyExcept(ByteLevelAlphabet.Characters);
                if (outside >= 0)
                {
                    throw value.Error($"has the character U+{(int)token[outside]:X4}, outside the byte-level alphabet (ignore_merges needs byte-level tokens)");
                }
            }
            for (int b = 0; b < 256; b++)
            {
                string single = ByteLevelAlphabet.CharacterOf((byte)b).ToString();
                if (!tokens.ContainsKey(single))
                {
                    throw vocab.Error($"has no token for byte 0x{b:X2} ({JsonFields.Quote(single)}); ignore_merges needs every byte");
                }
            }
        }
        return tokens;
    }

    /// <summary>The merges as "a b"; each side and the merged token must be in the vocabulary, as transformers requires.</summary>
    private static List<string> ReadMerges(JsonFields model, Dictionary<string, int> vocab)
    {
        var result = new List<string>();
        if (model.OptionalArray("merges") is not { } list)
        {
            return result;
        }
        foreach (var merge in list)
        {
            if (merge.Kind == JsonValueKind.String)
            {
                string text = merge.AsString();
                int space = text.IndexOf(' ', StringComparison.Ordinal);
                if (space <= 0 || space == text.Length - 1 || text.IndexOf(' ', space + 1) >= 0)
                {
                    throw merge.Wrong("two tokens separated by one space");
                }
                result.Add(text);
            }
            else if (merge.Kind == JsonValueKind.Array && merge.Value.GetArrayLength() == 2
                && merge.Value.EnumerateArray().All(side => side.ValueKind == JsonValueKind.String && side.GetString()!.Length > 0 && !side.GetString()!.Contains(' ', StringComparison.Ordinal)))
            {
                result.Add($"{merge.Value[0].GetString()} {merge.Value[1].GetString()}");
            }
            else
            {
                throw merge.Wrong("\"a b\" or [\"a\", \"b\"] (two tokens without spaces)");
            }
            string pair = result[^1];
            int cut = pair.IndexOf(' ', StringComparison.Ordinal);
            foreach (string token in (ReadOnlySpan<string>)[pair[..cut], pair[(cut + 1)..], string.Concat(pair.AsSpan(0, cut), pair.AsSpan(cut + 1))])
            {
                if (!vocab.ContainsKey(token))
                {
                    throw merge.Error($"merges {JsonFields.Quote(pair)}, but {JsonFields.Quote(token)} is not in model.vocab");
                }
            }
        }
        return result;
    }

    /// <summary>
    /// The added tokens by content. A token listed twice with the same id is taken once, as transformers does; the same
    /// content with two ids, or one id for two contents, is refused.
    /// </summary>
    private static Dictionary<string, int> ReadAddedTokens(JsonFields root)
    {
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (root.OptionalArray("added_tokens") is not { } list)
        {
            return added;
        }
        var byId = new Dictionary<int, string>();
        foreach (var item in list)
        {
            var token = item.Kind == JsonValueKind.Object ? item : throw item.Wrong("an object with \"id\" and \"content\"");
            int id = token.Int("id", 0, MaxId);
            string content = token.String("content");
            if (content.Length == 0)
            {
                throw token.Error("content", "is empty");
            }
            if (added.TryGetValue(content, out int earlier))
            {
                if (earlier != id)
                {
                    throw token.Error($"repeats {JsonFields.Quote(content)} with id {id} (listed before with id {earlier})");
                }
                continue;
            }
            if (byId.TryGetValue(id, out string? other))
            {
                throw token.Error($"gives id {id} to {JsonFields.Quote(content)}, which {JsonFields.Quote(other)} already has");
            }
            added.Add(content, id);
            byId.Add(id, content);
        }
        return added;
    }

    /// <summary>The Split pre-tokenizer's regex (alone or in a Sequence), else GPT-2's; compiled with <see cref="MatchTimeout"/>.</summary>
    private static Regex ReadPreTokenizer(JsonFields root, string path)
    {
        string pattern = Gpt2Pattern;
        JsonFields? at = null;
        if (root.Member("pre_tokenizer") is { Kind: JsonValueKind.Object } pre)
        {
            var steps = pre.Member("pretokenizers") is { Kind: JsonValueKind.Array } sequence ? sequence.AsArray() : [pre];
            foreach (var step in steps)
            {
                var regex = step.Member("pattern").Member("Regex");
                if (step.Member("type") is { Kind: JsonValueKind.String } type && type.AsString() == "Split" && regex.Kind != JsonValueKind.Undefined)
                {
                    at = regex;
                    pattern = regex.AsString();
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
            const string problem = "is not a regular expression .NET can run: ";
            throw at is { } where ? where.Error(problem + e.Message) : new UserErrorException($"{path}: GPT-2's pattern {problem}{e.Message}");
        }
    }
}
