namespace CudaFinetune.Tokenizers;

/// <summary>
/// Text ↔ token ids. Implementations: GPT-2 byte-level BPE (the demo's, built in) and a Hugging Face
/// directory's own tokenizer.json or SentencePiece tokenizer.model (<see cref="HfTokenizer"/>). Encode adds no special tokens: callers add BOS/EOS where a format wants them.
/// </summary>
public interface ITokenizer
{
    /// <summary>The name a model directory records (e.g. "gpt2").</summary>
    string Name { get; }

    /// <summary>Ids are below this.</summary>
    int VocabSize { get; }

    /// <summary>Beginning-of-sequence id, if the tokenizer has one.</summary>
    int? BosId { get; }

    /// <summary>End-of-sequence id (GPT-2's &lt;|endoftext|&gt;).</summary>
    int EosId { get; }

    IReadOnlyList<int> Encode(string text);

    string Decode(IEnumerable<int> ids);
}
