using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace CudaFinetune.Tokenizers;

/// <summary>
/// A tokenizer.json's <c>Split</c> pre-tokenizer (behaviour "Isolated", as byte-level files use it) with its added tokens:
/// the text is cut at each added token (the longest first, as transformers matches them), and each stretch between them
/// into the pattern's non-empty matches and, as pieces of their own, the text between matches.
/// </summary>
/// <remarks>
/// Ours rather than Microsoft.ML.Tokenizers' <c>RegexPreTokenizer</c> because the pattern comes from a file, and that one
/// loops forever on a pattern that matches the empty string (<c>x*</c>, <c>$</c>, a lookahead) and drops the text
/// between matches. The regex carries its own match timeout (<see cref="TokenizerJson.MatchTimeout"/>); the
/// <see cref="RegexMatchTimeoutException"/> it throws is the caller's to word.
/// </remarks>
internal sealed class SplitPreTokenizer : PreTokenizer
{
    private readonly Regex _pattern;
    private readonly Regex? _addedTokens;

    public SplitPreTokenizer(Regex pattern, IEnumerable<string> addedTokens)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(addedTokens);
        _pattern = pattern;
        string[] tokens = [.. addedTokens.Where(t => t.Length > 0).Distinct(StringComparer.Ordinal)
            .OrderByDescending(t => t.Length).ThenBy(t => t, StringComparer.Ordinal)];
        // Escaped literals cannot backtrack badly; the timeout is there because this too is a Regex run over user text.
        _addedTokens = tokens.Length == 0 ? null
            : new Regex(string.Join('|', tokens.Select(Regex.Escape)), RegexOptions.CultureInvariant, pattern.MatchTimeout);
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => Split(text ?? string.Empty);

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => Split(text.ToString());

    private List<(int Offset, int Length)> Split(string text)
    {
        var pieces = new List<(int Offset, int Length)>();
        int at = 0;
        for (var token = _addedTokens?.Match(text) ?? Match.Empty; token.Success; token = token.NextMatch())
        {
            SplitStretch(text, at, token.Index, pieces);
            pieces.Add((token.Index, token.Length));
            at = token.Index + token.Length;
        }
        SplitStretch(text, at, text.Length, pieces);
        return pieces;
    }

    /// <summary>Adds the pieces of text[start..end): the pattern's non-empty matches and the text between them.</summary>
    private void SplitStretch(string text, int start, int end, List<(int Offset, int Length)> pieces)
    {
        int at = start;
        foreach (var match in _pattern.EnumerateMatches(text.AsSpan(start, end - start)))
        {
            if (match.Length == 0)
            {
                continue; // an empty piece holds no text; the engine itself steps past an empty match
            }
            int index = start + match.Index;
            if (index > at)
            {
                pieces.Add((at, index - at));
            }
            pieces.Add((index, match.Length));
            at = index + match.Length;
        }
        if (end > at)
        {
            pieces.Add((at, end - at));
        }
    }
}
