using System.Text.Json;
using CudaFinetune.Data;
using CudaFinetune.Errors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;
using static CudaFinetune.Tests.Data.DatasetTestSupport;

namespace CudaFinetune.Tests.Data;

/// <summary>Chat records with a tokenizer that lacks the template's special tokens: one message saying which tokenizers work and what to do instead.</summary>
[TestFixture]
public sealed class ChatTokenizerRequirementTests : TempDirectoryFixture
{
    private string _chat = null!;

    [SetUp]
    public void SetUp()
    {
        string record = JsonSerializer.Serialize(new { messages = new object[] { new { role = "user", content = "hi" }, new { role = "assistant", content = "hello" } } });
        _chat = WriteLines(Dir, "chat.jsonl", record, record);
    }

    [Test]
    public void The_gpt2_tokenizer_is_refused_with_the_tokenizers_chat_needs_and_the_alternatives()
    {
        var e = Assert.Throws<UserErrorException>(() => DatasetLoader.Load(Options(_chat), Gpt2, Gpt2.VocabSize));
        Assert.That(e!.Message, Does.StartWith($"{_chat}: chat records (messages) need a tokenizer with the chat template's special tokens, but tokenizer 'gpt2' has neither"));
        Assert.That(e.Message, Does.Contain("Llama 3's tokenizer.json (<|begin_of_text|>, <|start_header_id|>, <|end_header_id|>, <|eot_id|>)")
            .And.Contain("Llama 2's tokenizer.model")
            .And.Contain("Use a model directory that has such a tokenizer, or convert the records to the alpaca (instruction/input/output) or text format"));
        Assert.That(e.Message, Does.Not.Contain("line 2"), "said once for the file, not per record");
    }

    [Test]
    public void Llama3_asked_for_with_a_tokenizer_without_its_header_tokens_is_refused_instead_of_rendered_as_plain_text()
    {
        var chars = new CharTokenizer();
        var e = Assert.Throws<UserErrorException>(() => DatasetLoader.Load(Options(_chat) with { ChatTemplate = "llama3" }, chars, chars.VocabSize));
        Assert.That(e!.Message, Does.Contain("tokenizer 'chars' does not have <|start_header_id|>, <|end_header_id|> and <|eot_id|> as single tokens (--chat-template llama3)"));
        Assert.That(DatasetLoader.Load(Options(_chat), chars, chars.VocabSize).Train, Has.Count.EqualTo(2), "auto picks llama2, which needs only a BOS");
    }
}
