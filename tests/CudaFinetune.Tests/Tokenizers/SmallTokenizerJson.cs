using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using CudaFinetune.Tokenizers;

namespace CudaFinetune.Tests.Tokenizers;

/// <summary>
/// A small byte-level BPE tokenizer.json as transformers writes one (256 byte tokens, three merges, two added tokens, a
/// Split pre-tokenizer then ByteLevel), in both flavours: BPE with merges, and Llama 3's tiktoken style
/// (<c>ignore_merges</c>). Parts can be replaced by raw JSON, so tests can plant one fault at a time.
/// </summary>
internal static class SmallTokenizerJson
{
    public const string Pattern = @"'s|'t| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public const string Begin = "<|begin|>";
    public const string End = "<|end|>";

    /// <summary>A text that meets every part: merges, letters, digits, punctuation, an added token.</summary>
    public const string Sample = "the theater's 42 cats <|end|> é!";

    private static readonly string[] MergedTokens = ["\u0120t", "he", "\u0120the"];

    public static string Text(bool tiktoken, string? vocab = null, string? merges = null, string? addedTokens = null, string? pattern = null)
    {
        vocab ??= Vocab();
        merges ??= """["\u0120 t", "h e", "\u0120t he"]""";
        addedTokens ??= $$"""[{"id": 300, "content": "{{Begin}}", "special": true}, {"id": 301, "content": "{{End}}", "special": true}]""";
        string regex = JsonSerializer.Serialize(pattern ?? Pattern, Options);
        return $$$"""
            {"version": "1.0", "added_tokens": {{{addedTokens}}}, "normalizer": null,
             "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": {{{regex}}}}, "behavior": "Isolated", "invert": false},
               {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
             "post_processor": null, "decoder": {"type": "ByteLevel"},
             "model": {"type": "BPE", "dropout": null, "unk_token": null, "ignore_merges": {{{(tiktoken ? "true" : "false")}}},
                       "vocab": {{{vocab}}}, "merges": {{{merges}}}}}
            """;
    }

    /// <summary>The vocabulary: every byte (ids 0–255 in byte order) and the merged tokens (256 on).</summary>
    public static string Vocab()
    {
        var tokens = Enumerable.Range(0, 256).Select(b => ByteLevelAlphabet.CharacterOf((byte)b).ToString()).Concat(MergedTokens);
        return JsonSerializer.Serialize(tokens.Select((token, id) => (token, id)).ToDictionary(p => p.token, p => p.id), Options);
    }

    /// <summary>A model directory's tokenizer files: tokenizer.json as given, and a tokenizer_config.json naming BOS and EOS.</summary>
    public static string WriteModelDir(string dir, string tokenizerJson)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, HfTokenizer.TokenizerJsonFileName), tokenizerJson, new UTF8Encoding(false));
        File.WriteAllText(Path.Combine(dir, HfTokenizer.ConfigFileName), $$"""{"bos_token": "{{Begin}}", "eos_token": "{{End}}"}""");
        return Path.Combine(dir, HfTokenizer.TokenizerJsonFileName);
    }

    private static readonly JsonSerializerOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
