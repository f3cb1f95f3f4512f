using CudaFinetune.Tokenizers;
using NUnit.Framework;

namespace CudaFinetune.Tests.Tokenizers;

public sealed class Gpt2TokenizerTests
{
    private static readonly Gpt2Tokenizer Tokenizer = new();

    /// <summary>Reference ids from Hugging Face's GPT2Tokenizer (identical to tiktoken's gpt2 encoding).</summary>
    [TestCase("Hello world", new[] { 15496, 995 })]
    [TestCase(" Hello", new[] { 18435 })]
    [TestCase("hello world", new[] { 31373, 995 })]
    [TestCase("Hello, world!", new[] { 15496, 11, 995, 0 })]
    [TestCase("The quick brown fox", new[] { 464, 2068, 7586, 21831 })]
    [TestCase("\n", new[] { 198 })]
    [TestCase("<|endoftext|>", new[] { 50256 })]
    [TestCase("Hi<|endoftext|>", new[] { 17250, 50256 })]
    public void Encodes_to_the_reference_ids(string text, int[] expected)
    {
        Assert.That(Tokenizer.Encode(text), Is.EqualTo(expected));
    }

    [Test]
    public void Describes_itself_as_gpt2()
    {
        Assert.That(Tokenizer.Name, Is.EqualTo("gpt2"));
        Assert.That(Tokenizer.VocabSize, Is.EqualTo(50257));
        Assert.That(Tokenizer.EosId, Is.EqualTo(50256));
        Assert.That(Tokenizer.BosId, Is.Null);
        Assert.That(Tokenizer.Decode([50256]), Is.EqualTo("<|endoftext|>"));
    }

    [TestCase("")]
    [TestCase("Grüße aus Köln — naïve café, 日本語のテキスト, 🙂👍🏽 and Ελληνικά")]
    [TestCase("def f(x):\n\treturn x ** 2  # square\n\nprint(f(3))\r\n")]
    [TestCase("   leading, trailing   \n\n\t\t mixed \u00a0 whitespace  ")]
    [TestCase("a<|endoftext|>b <|endoftext|>")]
    [TestCase("{\"json\": [1, 2.5e-3, null]} <tag attr='v'/> ``` $x = @y; ```")]
    public void Decode_inverts_encode(string text)
    {
        IReadOnlyList<int> ids = Tokenizer.Encode(text);
        Assert.That(ids, Has.All.InRange(0, Tokenizer.VocabSize - 1));
        Assert.That(Tokenizer.Decode(ids), Is.EqualTo(text));
    }

    [Test]
    public void Decoding_an_id_outside_the_vocabulary_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.Decode([50257]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.Decode([-1]));
    }
}
