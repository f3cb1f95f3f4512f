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
/// <c>Split</c> regex (GPT-2's when it has none), run by <see cref="SplitPreTokenizer"/>.
/// </remarks>
public sealed class HfTokenizer : ITokenizer
{
    public const string TokenizerJsonFileName = "tokenizer.json";
    public const string SentencePieceFileName = "tokenizer.model";
    public const string ConfigFileName = "tokenizer_config.json";

    private readonly Tokenizer _inner;
    private readonly bool _sentencePiece;

    /// <summary>The largest tokenizer file read: Llama 3's tokenizer.json is 9 MB, the largest known ones ~50 MB.</summary>
    private const long MaxFileBytes = 512L << 20;

    private readonly string _source;

    private HfTokenizer(string source, string name, Tokenizer inner, bool sentencePiece, int vocabSize, int? bosId, int eosId)
    {
        _source = source;
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
        try
        {
            return _sentencePiece
                ? ((SentencePieceTokenizer)_inner).EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false)
                : _inner.EncodeToIds(text);
        }
        catch (RegexMatchTimeoutException e)
        {
            throw new UserErrorException($"{_source}: the pre-tokenizer's pattern ran over {TokenizerJson.MatchTimeout.TotalSeconds:0} s on a text of {text.Length:N0} characters "
                + "(a pattern that backtracks catastrophically); fix the Split pattern in the file", e);
        }
    }

    /// <summary>
    /// A file of a model's tokenizer, whole: a regular file (a link is followed — model caches link their files — but a
    /// FIFO or device is refused rather than waited on) of at most <see cref="MaxFileBytes"/>.
    /// </summary>
    internal static byte[] ReadFile(string path)
    {
        try
        {
            return IO.RegularFiles.ReadAll(path, MaxFileBytes, followLinks: true);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserErrorException($"{path}: cannot be read as a tokenizer file ({e.Message})", e);
        }
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
        using var doc = IO.JsonFields.Parse(ReadFile(path), path, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        var root = IO.JsonFields.Root(doc, path);
        static string? Token(IO.JsonFields token) => token.Kind switch
        {
            JsonValueKind.String => token.AsString(),
            JsonValueKind.Object => token.OptionalString("content"),
            _ => null,
        };
        return (Token(root.Member("bos_token")), Token(root.Member("eos_token")));
    }

    private static HfTokenizer FromTokenizerJson(string path, (string? Bos, string? Eos) config)
    {
        var file = TokenizerJson.Read(ReadFile(path), path);
        var vocab = file.Vocab;
        var added = file.AddedTokens;
        int? Id(string? token) => token is null ? null : added.TryGetValue(token, out int id) ? id : vocab.TryGetValue(token, out id) ? id : null;
        int eos = Id(config.Eos) ?? throw new UserErrorException($"{path}: the eos_token of {ConfigFileName} ('{config.Eos ?? "none"}') is not in the vocabulary");
        Tokenizer inner;
        try
        {
            var preTokenizer = new SplitPreTokenizer(file.PreTokenizer, added.Keys);
            inner = file.IgnoreMerges
                ? TiktokenTokenizer.Create(TiktokenRanks(vocab), preTokenizer, normalizer: null, specialTokens: added)
                : BpeTokenizer.Create(new BpeOptions(vocab) { Merges = file.Merges, ByteLevel = true, PreTokenizer = preTokenizer, SpecialTokens = added });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or KeyNotFoundException or FormatException or IndexOutOfRangeException)
        {
            // What the checks of TokenizerJson do not foresee, Microsoft.ML.Tokenizers refuses in its own words.
            throw new UserErrorException($"{path}: not a tokenizer.json this engine reads ({e.Message})", e);
        }
        int vocabSize = Math.Max(vocab.Values.Max(), added.Count > 0 ? added.Values.Max() : 0) + 1;
        return new HfTokenizer(path, TokenizerJsonFileName, inner, sentencePiece: false, vocabSize, Id(config.Bos), eos);
    }

    private static HfTokenizer FromSentencePiece(string path, (string? Bos, string? Eos) config)
    {
        SentencePieceTokenizer inner;
        try
        {
            using var stream = new MemoryStream(ReadFile(path));
            inner = SentencePieceTokenizer.Create(stream, false, false);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or ArgumentException or FormatException or InvalidOperationException)
        {
            throw new UserErrorException($"{path}: not a SentencePiece model this engine reads ({error.Message})", error);
        }
        int bos = config.Bos is null ? inner.BeginningOfSentenceId : inner.EncodeToIds(config.Bos, false, false, considerPreTokenization: false, considerNormalization: false) is [int b] ? b : inner.BeginningOfSentenceId;
        int eos = config.Eos is null ? inner.EndOfSentenceId : inner.EncodeToIds(config.Eos, false, false, considerPreTokenization: false, considerNormalization: false) is [int e] ? e : inner.EndOfSentenceId;
        return new HfTokenizer(path, SentencePieceFileName, inner, sentencePiece: true, inner.Vocabulary.Count, bos, eos);
    }

    /// <summary>The vocabulary as a tiktoken file ("base64(bytes) rank" per line), the byte-level characters mapped back to bytes.</summary>
    private static MemoryStream TiktokenRanks(Dictionary<string, int> vocab)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        foreach (var (token, id) in vocab.OrderBy(v => v.Value))
        {
            bytes.Clear();
            foreach (char c in token)
            {
                bytes.Add(ByteLevelAlphabet.TryGetByte(c, out byte b) ? b : throw new FormatException($"vocabulary token '{token}' has a character outside the byte-level alphabet"));
            }
            text.Append(Convert.ToBase64String([.. bytes])).Append(' ').Append(id).Append('\n');
        }
        return new MemoryStream(Encoding.UTF8.GetBytes(text.ToString()));
    }
}
