using CudaFinetune.Errors;
using CudaFinetune.Tests.Support;
using CudaFinetune.Tokenizers;
using NUnit.Framework;
using static CudaFinetune.Tests.Tokenizers.SmallTokenizerJson;

namespace CudaFinetune.Tests.Tokenizers;

/// <summary>
/// A malformed tokenizer.json is refused with one line naming the file and the field (where Microsoft.ML.Tokenizers
/// would end the process with an unhandled exception), and a pre-tokenizer pattern that backtracks without end is stopped
/// with a message instead of spinning for hours.
/// </summary>
[TestFixture]
public sealed class TokenizerJsonValidationTests : TempDirectoryFixture
{
    private string Refusal(string tokenizerJson)
    {
        string path = WriteModelDir(Dir.File("model"), tokenizerJson);
        var e = Assert.Throws<UserErrorException>(() => HfTokenizer.Load(Dir.File("model")));
        Assert.That(e!.Message, Does.StartWith($"{path}: "));
        return e.Message[(path.Length + 2)..];
    }

    [TestCase(false)]
    [TestCase(true)]
    public void The_small_tokenizer_loads_encodes_and_decodes_its_text_back(bool tiktoken)
    {
        WriteModelDir(Dir.File("model"), Text(tiktoken));
        var tokenizer = HfTokenizer.Load(Dir.File("model"));
        var ids = tokenizer.Encode(Sample);
        Assert.That(ids, Does.Contain(258), "' the' is one merged token");
        Assert.That(ids, Does.Contain(301), "the added token is matched whole");
        Assert.That(tokenizer.Decode(ids), Is.EqualTo(Sample));
        Assert.That((tokenizer.BosId, tokenizer.EosId, tokenizer.VocabSize), Is.EqualTo(((int?)300, 301, 302)));
    }

    [TestCase("""{"a": null}""", """'model.vocab["a"]' must be an integer from 0 to 10000000, found null""")]
    [TestCase("""{"a": -1}""", """'model.vocab["a"]' must be an integer from 0 to 10000000, found -1""")]
    [TestCase("""{"a": 1.5}""", """'model.vocab["a"]' must be an integer from 0 to 10000000, found 1.5""")]
    [TestCase("""{"a\nb": "1"}""", "'model.vocab[\"a\\nb\"]' must be an integer from 0 to 10000000, found \"1\"")]
    [TestCase("""{"": 1}""", "'model.vocab' has an empty token")]
    [TestCase("{}", "'model.vocab' is empty")]
    [TestCase("[]", "'model.vocab' must be an object, found []")]
    [TestCase("""{"a": 1, "a": 2}""", """'model.vocab' has the token "a" twice""")]
    [TestCase("""{"a": 1, "b": 1}""", "'model.vocab' gives id 1 to both \"a\" and \"b\"")]
    public void A_malformed_vocabulary_is_refused_naming_the_field(string vocab, string expected)
        => Assert.That(Refusal(Text(tiktoken: false, vocab: vocab, merges: "[]", addedTokens: "[]")), Is.EqualTo(expected));

    [TestCase("[null]", "'added_tokens[0]' must be an object with \"id\" and \"content\", found null")]
    [TestCase("""[{"content": "<x>"}]""", "'added_tokens[0].id' is missing")]
    [TestCase("""[{"id": 300, "content": null}]""", "'added_tokens[0].content' must be a string, found null")]
    [TestCase("""[{"id": 300, "content": 7}]""", "'added_tokens[0].content' must be a string, found 7")]
    [TestCase("""[{"id": 300, "content": ""}]""", "'added_tokens[0].content' is empty")]
    [TestCase("""[{"id": 300, "content": "<x>"}, {"id": 301, "content": "<x>"}]""", """'added_tokens[1]' repeats "<x>" with id 301 (listed before with id 300)""")]
    [TestCase("""[{"id": 300, "content": "<x>"}, {"id": 300, "content": "<y>"}]""", """'added_tokens[1]' gives id 300 to "<y>", which "<x>" already has""")]
    [TestCase("""{"id": 300}""", "'added_tokens' must be an array, found {\"id\": 300}")]
    public void Malformed_added_tokens_are_refused_naming_the_field(string added, string expected)
        => Assert.That(Refusal(Text(tiktoken: false, addedTokens: added)), Is.EqualTo(expected));

    [Test]
    public void Half_a_surrogate_pair_escaped_in_a_token_is_refused_as_invalid_json()
        => Assert.That(Refusal(Text(tiktoken: false, vocab: """{"a\ud800": 1}""", merges: "[]", addedTokens: "[]")),
            Does.StartWith("not valid JSON (the text escapes half a UTF-16 surrogate pair (\\ud800) at byte"));

    [Test]
    public void An_added_token_listed_twice_with_one_id_loads_as_transformers_does()
    {
        string added = $$"""[{"id": 300, "content": "{{Begin}}"}, {"id": 301, "content": "{{End}}"}, {"id": 301, "content": "{{End}}"}]""";
        WriteModelDir(Dir.File("model"), Text(tiktoken: false, addedTokens: added));
        Assert.That(HfTokenizer.Load(Dir.File("model")).Encode(End), Is.EqualTo(new[] { 301 }));
    }

    [TestCase("""["a"]""", "'model.merges[0]' must be two tokens separated by one space, found \"a\"")]
    [TestCase("""["a b c"]""", "'model.merges[0]' must be two tokens separated by one space, found \"a b c\"")]
    [TestCase("""[["a"]]""", """'model.merges[0]' must be "a b" or ["a", "b"] (two tokens without spaces), found ["a"]""")]
    [TestCase("[7]", """'model.merges[0]' must be "a b" or ["a", "b"] (two tokens without spaces), found 7""")]
    public void Malformed_merges_are_refused_naming_the_field(string merges, string expected)
        => Assert.That(Refusal(Text(tiktoken: false, merges: merges)), Is.EqualTo(expected));

    [TestCase("""["h q"]""", "'model.merges[0]' merges \"h q\", but \"hq\" is not in model.vocab")]
    [TestCase("""["\u0120 t", ["h", "\u4e2d"]]""", "'model.merges[1]' merges \"h \u4e2d\", but \"\u4e2d\" is not in model.vocab")]
    public void A_merge_of_tokens_outside_the_vocabulary_is_refused(string merges, string expected)
        => Assert.That(Refusal(Text(tiktoken: false, merges: merges)), Is.EqualTo(expected));

    [Test]
    public void An_invalid_pattern_is_refused_with_the_parsers_reason()
        => Assert.That(Refusal(Text(tiktoken: false, pattern: "(unclosed")),
            Does.StartWith("'pre_tokenizer.pretokenizers[0].pattern.Regex' is not a regular expression .NET can run: ").And.Contain("(unclosed"));

    [Test]
    public void A_tiktoken_vocabulary_needs_byte_level_tokens_and_every_byte()
    {
        Assert.That(Refusal(Text(tiktoken: true, vocab: Vocab().Replace("\"he\":", "\"h\\u0000\":", StringComparison.Ordinal))),
            Is.EqualTo("""'model.vocab["h\u0000"]' has the character U+0000, outside the byte-level alphabet (ignore_merges needs byte-level tokens)"""));
        Assert.That(Refusal(Text(tiktoken: true, vocab: Vocab().Replace("\"!\":", "\"!!\":", StringComparison.Ordinal))),
            Is.EqualTo("""'model.vocab' has no token for byte 0x21 ("!"); ignore_merges needs every byte"""));
    }

    [Test]
    public void A_pattern_that_backtracks_catastrophically_is_stopped_with_a_message()
    {
        string path = WriteModelDir(Dir.File("model"), Text(tiktoken: false, pattern: "(a|aa)+$"));
        var tokenizer = HfTokenizer.Load(Dir.File("model"));
        var e = Assert.Throws<UserErrorException>(() => tokenizer.Encode(new string('a', 80) + "b"));
        Assert.That(e!.Message, Is.EqualTo($"{path}: the pre-tokenizer's pattern ran over 2 s on a text of 81 characters (a pattern that backtracks catastrophically); fix the Split pattern in the file"));
    }

    [TestCase("x*", TestName = "A pattern matching the empty string everywhere")]
    [TestCase("$", TestName = "A pattern matching only the empty end")]
    [TestCase("(?=l)", TestName = "A lookahead alone")]
    [TestCase("l", TestName = "A pattern leaving text between its matches")]
    [TestCase("o|(?=w)", TestName = "A pattern matching empty and non-empty")]
    public void Every_character_is_encoded_whatever_the_pattern_matches(string pattern)
    {
        // Microsoft.ML.Tokenizers' own pre-tokenizer loops forever on an empty match and drops the text between matches;
        // transformers keeps that text as pieces of its own ("Isolated"). Run aside so a hang fails instead of stalling.
        WriteModelDir(Dir.File("model"), Text(tiktoken: false, pattern: pattern));
        var tokenizer = HfTokenizer.Load(Dir.File("model"));
        const string text = "hello world <|end|>lol";
        var encoding = Task.Run(() => tokenizer.Encode(text));
        Assert.That(encoding.Wait(TimeSpan.FromSeconds(30)), Is.True, "Encode returned");
        Assert.That(tokenizer.Decode(encoding.Result), Is.EqualTo(text));
        Assert.That(encoding.Result, Does.Contain(301), "the added token is one token");
    }

    [Test]
    [Platform("Linux")]
    public void A_tokenizer_file_that_is_a_fifo_is_refused_not_waited_on()
    {
        string path = WriteModelDir(Dir.File("model"), Text(tiktoken: false));
        File.Delete(path);
        Support.HostileFiles.MakeFifo(path);
        var e = Assert.Throws<UserErrorException>(() => HfTokenizer.Load(Dir.File("model")));
        Assert.That(e!.Message, Does.StartWith($"{path}: cannot be read as a tokenizer file").And.Contain("FIFO"));
    }
}
