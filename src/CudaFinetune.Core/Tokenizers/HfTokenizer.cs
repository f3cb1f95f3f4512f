using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using CudaFinetune.Errors;
using Microsoft.ML.Tokenizers;

namespace CudaFinetune.Tokenizers;

/// <summary>
/// A Hugging Face model directory's own tokenizer, through Microsoft.ML.Tokenizers: <c>tokenizer.json</c> with a
/// byte-level BPE model (Llama 3 and its kin) or a SentencePiece <c>tokenizer.model</c> (Llama 2). BOS and EOS come
/// from <c>tokenizer_config.json</c> (<c>bos_token</c>, <c>eos_token</c>); the added tokens (special or not) are
/// matched as whole tokens inside text, as transformers does. <see cref="Encode"/> adds no special tokens.
/// </summary>
/// <remarks>
/// A byte-level BPE whose <c>tokenizer.json</c> says <c>"ignore_merges": true</c> — Llama 3's, converted from tiktoken —
/// is run as a tiktoken encoding (ranks = ids: a whole pre-token that is in the vocabulary is one token, which merges
/// alone might not reach); other byte-level BPEs run as BPE with their merges. The pre-tokenizer is the file's
/// <c>Split</c> regex (GPT-2's when it has none).
/// </remarks>
public sealed class HfTokenizer : ITokenizer
{
    public const string TokenizerJsonFileName = "tokenizer.json";
    public const string SentencePieceFileName = "tokenizer.model";
    public const string ConfigFileName = "tokenizer_config.json";

    /// <summary>GPT-2's pre-tokenization regex (a ByteLevel pre-tokenizer with use_regex and no Split before it).</summary>
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly Tokenizer _inner;
    private readonly bool _sentencePiece;

    private HfTokenizer(string name, Tokenizer inner, bool sentencePiece, int vocabSize, int? bosId, int eosId)
    {
        Name = name;
        _inner = inner;
        _sentencePiece = sentencePiece;
        VocabSize = vocabSize;
        BosId = bosId;
        EosId = eosId;
    }

    public string Name { get; }

    public int VocabSize { get; }

    public int? BosId { get; }

    public int EosId { get; }

    /// <summary>Whether <paramref name="modelDir"/> holds a tokenizer this class reads.</summary>
    public static bool Exists(string modelDir)
        => File.Exists(Path.Combine(modelDir, TokenizerJsonFileName)) || File.Exists(Path.Combine(modelDir, SentencePieceFileName));

    /// <summary>The directory's tokenizer (tokenizer.json preferred); <see cref="UserErrorException"/> for a kind it cannot run.</summary>
    public static HfTokenizer Load(string modelDir)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        var config = ReadConfig(Path.Combine(modelDir, ConfigFileName));
        string json = Path.Combine(modelDir, TokenizerJsonFileName);
        return File.Exists(json) ? FromTokenizerJson(json, config) : FromSentencePiece(Path.Combine(modelDir, SentencePieceFileName), config);
    }

    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return _sentencePiece
            ? ((SentencePieceTokenizer)_inner).EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false)
            : _inner.EncodeToIds(text);
    }

    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return _inner.Decode(ids) ?? string.Empty;
    }

    /// <summary>bos_token and eos_token of tokenizer_config.json (a string or an AddedToken object), when present.</summary>
    private static (string? Bos, string? Eos) ReadConfig(string path)
    {
        if (!File.Exists(path))
        {
            return (null, null);
        }
        try
        {
            using var doc = IO.StrictJson.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            static string? Token(JsonElement root, string key) => !root.TryGetProperty(key, out var v) ? null
                : v.ValueKind == JsonValueKind.String ? v.GetString()
                : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) ? c.GetString()
                : null;
            return (Token(doc.RootElement, "bos_token"), Token(doc.RootElement, "eos_token"));
        }
        catch (JsonException e)
        {
            throw new UserErrorException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    private static HfTokenizer FromTokenizerJson(string path, (string? Bos, string? Eos) config)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            var model = root.GetProperty("model");
            string type = model.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
            if (type != "BPE" || !UsesByteLevel(root))
            {
                throw new UserErrorException($"{path}: a {(type.Length > 0 ? type : "typeless")} tokenizer{(type == "BPE" ? " without byte-level pre-tokenization (e.g. SentencePiece-style BPE)" : "")} is not supported; byte-level BPE tokenizer.json (Llama 3) and tokenizer.model (SentencePiece, Llama 2) are");
            }
            var vocab = model.GetProperty("vocab").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32(), StringComparer.Ordinal);
            var added = root.TryGetProperty("added_tokens", out var a)
                ? a.EnumerateArray().ToDictionary(x => x.GetProperty("content").GetString()!, x => x.GetProperty("id").GetInt32(), StringComparer.Ordinal)
                : [];
            var regex = new Regex(SplitPattern(root) ?? Gpt2Pattern, RegexOptions.Compiled);
            var preTokenizer = new RegexPreTokenizer(regex, added);
            bool ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;
            Tokenizer inner = ignoreMerges
                ? TiktokenTokenizer.Create(TiktokenRanks(vocab), preTokenizer, normalizer: null, specialTokens: added)
                : BpeTokenizer.Create(new BpeOptions(vocab) { Merges = Merges(model), ByteLevel = true, PreTokenizer = preTokenizer, SpecialTokens = added });
            int vocabSize = Math.Max(vocab.Values.Max(), added.Count > 0 ? added.Values.Max() : 0) + 1;
            int? Id(string? token) => token is null ? null : added.TryGetValue(token, out int id) ? id : vocab.TryGetValue(token, out id) ? id : null;
            int eos = Id(config.Eos) ?? throw new UserErrorException($"{path}: the eos_token of {ConfigFileName} ('{config.Eos ?? "none"}') is not in the vocabulary");
            return new HfTokenizer(TokenizerJsonFileName, inner, sentencePiece: false, vocabSize, Id(config.Bos), eos);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new UserErrorException($"{path}: not a tokenizer.json this engine reads ({e.Message})", e);
        }
    }

    private static HfTokenizer FromSentencePiece(string path, (string? Bos, string? Eos) config)
    {
        SentencePieceTokenizer inner;
        try
        {
            using var stream = File.OpenRead(path);
            inner = SentencePieceTokenizer.Create(stream, false, false);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or ArgumentException or FormatException or InvalidOperationException)
        {
            throw new UserErrorException($"{path}: not a SentencePiece model this engine reads ({error.Message})", error);
        }
        int bos = config.Bos is null ? inner.BeginningOfSentenceId : inner.EncodeToIds(config.Bos, false, false, considerPreTokenization: false, considerNormalization: false) is [int b] ? b : inner.BeginningOfSentenceId;
        int eos = config.Eos is null ? inner.EndOfSentenceId : inner.EncodeToIds(config.Eos, false, false, considerPreTokenization: false, considerNormalization: false) is [int e] ? e : inner.EndOfSentenceId;
        return new HfTokenizer(SentencePieceFileName, inner, sentencePiece: true, inner.Vocabulary.Count, bos, eos);
    }

    private static bool UsesByteLevel(JsonElement root)
        => root.TryGetProperty("pre_tokenizer", out var pre) && pre.GetRawText().Contains("\"ByteLevel\"", StringComparison.Ordinal);

    /// <summary>The Regex of a Split pre-tokenizer (alone or in a Sequence), if there is one.</summary>
    private static string? SplitPattern(JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
        {
            return null;
        }
        var steps = pre.TryGetProperty("pretokenizers", out var list) ? [.. list.EnumerateArray()] : new[] { pre };
        foreach (var step in steps)
        {
            if (step.TryGetProperty("type", out var type) && type.GetString() == "Split"
                && step.TryGetProperty("pattern", out var pattern) && pattern.TryGetProperty("Regex", out var regex))
            {
                return regex.GetString();
            }
        }
        return null;
    }

    private static IEnumerable<string> Merges(JsonElement model)
        => model.GetProperty("merges").EnumerateArray().Select(m => m.ValueKind == JsonValueKind.Array
            ? $"{m[0].GetString()} {m[1].GetString()}"
            : m.GetString()!);

    /// <summary>The vocabulary as a tiktoken file ("base64(bytes) rank" per line), the byte-level characters mapped back to bytes.</summary>
    private static MemoryStream TiktokenRanks(Dictionary<string, int> vocab)
    {
        var byteOf = ByteLevelAlphabet();
        var text = new StringBuilder();
        var bytes = new List<byte>();
        foreach (var (token, id) in vocab.OrderBy(v => v.Value))
        {
            bytes.Clear();
            foreach (char c in token)
            {
                bytes.Add(byteOf.TryGetValue(c, out byte b) ? b : throw new FormatException($"vocabulary token '{token}' has a character outside the byte-level alphabet"));
            }
            text.Append(Convert.ToBase64String([.. bytes])).Append(' ').Append(id).Append('\n');
        }
        return new MemoryStream(Encoding.UTF8.GetBytes(text.ToString()));
    }

    /// <summary>GPT-2's bytes_to_unicode, inverted: the printable bytes stand for themselves, the rest for U+0100 onwards in order.</summary>
    private static Dictionary<char, byte> ByteLevelAlphabet()
    {
        var map = new Dictionary<char, byte>();
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[printable ? (char)b : (char)next++] = (byte)b;
        }
        return map;
    }
}
