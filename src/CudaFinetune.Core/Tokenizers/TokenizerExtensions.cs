namespace CudaFinetune.Tokenizers;

public static class TokenizerExtensions
{
    /// <summary>A prompt as the model sees it at generation time: BOS (when the tokenizer has one), then the text's ids.</summary>
    public static List<int> EncodePrompt(this ITokenizer tokenizer, string text)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var ids = new List<int>();
        if (tokenizer.BosId is int bos)
        {
            ids.Add(bos);
        }
        ids.AddRange(tokenizer.Encode(text));
        return ids;
    }
}
