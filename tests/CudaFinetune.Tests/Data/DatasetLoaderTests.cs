using CudaFinetune.Data;
using CudaFinetune.Errors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;
using static CudaFinetune.Tests.Data.DatasetTestSupport;

namespace CudaFinetune.Tests.Data;

public sealed class DatasetLoaderTests
{
    private const int Gpt2Vocab = 50257;

    private const string AlpacaInputPrompt =
        "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3\n\n### Response:\n";

    private const string AlpacaNoInputPrompt =
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:\n";

    [TestCase("""{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}""", "pretokenized")]
    [TestCase("""{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1]}""", "pretokenized")]
    [TestCase("""{"instruction": "Say hi.", "input": "", "output": "hi"}""", "alpaca")]
    [TestCase("""{"instruction": "Say hi.", "output": "hi"}""", "alpaca")]
    [TestCase("""{"id": "13818513", "dialogue": "Amanda: I baked cookies.", "summary": "Amanda baked cookies."}""", "samsum")]
    [TestCase("""{"text": "Once upon a time."}""", "text")]
    [TestCase("""{"prompt": "Q?", "response": "A."}""", "custom")]
    public void Recognises_the_format_by_its_fields(string record, string format)
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "data.jsonl", record, record);
        LoadedDataset data = DatasetLoader.Load(Options(path), Gpt2, Gpt2Vocab);
        Assert.That(data.Format, Is.EqualTo(format));
        Assert.That(data.Train, Has.Count.EqualTo(2));
        Assert.That(data.Validation, Is.Empty);
    }

    [Test]
    public void Alpaca_masks_the_prompt_and_counts_output_and_eos()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "a.jsonl", """{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}""");
        TokenizedExample example = DatasetLoader.Load(Options(path), Gpt2, Gpt2Vocab).Train[0];
        IReadOnlyList<int> prompt = Gpt2.Encode(AlpacaInputPrompt);
        IReadOnlyList<int> output = Gpt2.Encode("5");
        Assert.That(example.InputIds, Is.EqualTo(Concat(prompt, output, [50256])));
        Assert.That(example.Labels, Is.EqualTo(Concat(Masked(prompt.Count), output, [50256])));
    }

    [TestCase("""{"instruction": "Say hi.", "input": "", "output": "Hello there"}""")]
    [TestCase("""{"instruction": "Say hi.", "input": null, "output": "Hello there"}""")]
    [TestCase("""{"instruction": "Say hi.", "output": "Hello there"}""")]
    public void Alpaca_without_input_uses_the_no_input_prompt(string record)
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "a.jsonl", record);
        TokenizedExample example = DatasetLoader.Load(Options(path), Gpt2, Gpt2Vocab).Train[0];
        IReadOnlyList<int> prompt = Gpt2.Encode(AlpacaNoInputPrompt);
        IReadOnlyList<int> output = Gpt2.Encode("Hello there");
        Assert.That(example.InputIds, Is.EqualTo(Concat(prompt, output, [50256])));
        Assert.That(example.Labels, Is.EqualTo(Concat(Masked(prompt.Count), output, [50256])));
    }

    [Test]
    public void Samsum_masks_the_prompt()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "s.jsonl", """{"dialogue": "A: hi\nB: hello", "summary": "They greet."}""");
        TokenizedExample example = DatasetLoader.Load(Options(path), Gpt2, Gpt2Vocab).Train[0];
        IReadOnlyList<int> prompt = Gpt2.Encode("Summarize this dialog:\nA: hi\nB: hello\n---\nSummary:\n");
        IReadOnlyList<int> summary = Gpt2.Encode("They greet.");
        Assert.That(example.InputIds, Is.EqualTo(Concat(prompt, summary, [50256])));
        Assert.That(example.Labels, Is.EqualTo(Concat(Masked(prompt.Count), summary, [50256])));
    }

    [Test]
    public void Text_counts_every_token_and_ends_with_eos()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "t.jsonl", """{"text": "Once upon a time, {braces} stay."}""");
        TokenizedExample example = DatasetLoader.Load(Options(path), Gpt2, Gpt2Vocab).Train[0];
        int[] expected = Concat(Gpt2.Encode("Once upon a time, {braces} stay."), [50256]);
        Assert.That(example.InputIds, Is.EqualTo(expected));
        Assert.That(example.Labels, Is.EqualTo(expected));
    }

    [Test]
    public void A_tokenizer_with_bos_gets_it_prepended_and_masked_with_the_prompt()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "c.jsonl", """{"prompt": "ab", "response": "c"}""");
        TokenizedExample custom = DatasetLoader.Load(Options(path), new CharTokenizer(), 1000).Train[0];
        Assert.That(custom.InputIds, Is.EqualTo(new[] { 1, 'a' + 3, 'b' + 3, 'c' + 3, 2 }));
        Assert.That(custom.Labels, Is.EqualTo(new[] { -100, -100, -100, 'c' + 3, 2 }));

        path = WriteLines(dir, "t.jsonl", """{"text": "xy"}""");
        TokenizedExample text = DatasetLoader.Load(Options(path), new CharTokenizer(), 1000).Train[0];
        Assert.That(text.InputIds, Is.EqualTo(new[] { 1, 'x' + 3, 'y' + 3, 2 }));
        Assert.That(text.Labels, Is.EqualTo(text.InputIds));
    }

    [Test]
    public void Alpaca_braces_in_the_values_are_not_placeholders()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "a.jsonl", """{"instruction": "Echo {input}", "input": "x{instruction}", "output": "ok"}""");
        TokenizedExample example = DatasetLoader.Load(Options(path), new CharTokenizer(), 1000).Train[0];
        string prompt = new CharTokenizer().Decode(example.InputIds.Skip(1).Take(example.Labels.Count(l => l == -100) - 1));
        Assert.That(prompt, Does.Contain("### Instruction:\nEcho {input}\n\n### Input:\nx{instruction}\n\n### Response:\n"));
    }

    [Test]
    public void Pretokenized_records_are_taken_as_they_are_without_a_tokenizer()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "p.jsonl",
            """{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}""",
            "",
            """{"input_ids": [4, 5]}""");
        LoadedDataset data = DatasetLoader.Load(Options(path), tokenizer: null, vocabSize: 10);
        Assert.That(data.Format, Is.EqualTo("pretokenized"));
        Assert.That(data.Train[0].InputIds, Is.EqualTo(new[] { 1, 2, 3 }));
        Assert.That(data.Train[0].Labels, Is.EqualTo(new[] { -100, 2, 3 }));
        Assert.That(data.Train[1].InputIds, Is.EqualTo(new[] { 4, 5 }));
        Assert.That(data.Train[1].Labels, Is.EqualTo(new[] { 4, 5 }));
    }

    [Test]
    public void A_json_array_reads_like_json_lines()
    {
        using var dir = new TempDirectory();
        string array = dir.File("a.json");
        File.WriteAllText(array, "\uFEFF[\n  {\"text\": \"one\"},\n  {\"text\": \"two\"}\n]\n");
        string lines = WriteLines(dir, "b.json", """{"text": "one"}""", """{"text": "two"}""");
        string crlf = dir.File("c.jsonl");
        File.WriteAllText(crlf, "{\"text\": \"one\"}\r\n\r\n{\"text\": \"two\"}\r\n");
        string single = dir.File("d.json");
        File.WriteAllText(single, "{\n  \"text\": \"one\"\n}\n");
        var expected = DatasetLoader.Load(Options(array), Gpt2, Gpt2Vocab).Train.Select(e => e.InputIds).ToList();
        Assert.That(DatasetLoader.Load(Options(single), Gpt2, Gpt2Vocab).Train.Single().InputIds, Is.EqualTo(expected[0]));
        Assert.That(expected, Has.Count.EqualTo(2));
        Assert.That(DatasetLoader.Load(Options(lines), Gpt2, Gpt2Vocab).Train.Select(e => e.InputIds), Is.EqualTo(expected));
        Assert.That(DatasetLoader.Load(Options(crlf), Gpt2, Gpt2Vocab).Train.Select(e => e.InputIds), Is.EqualTo(expected));
    }

    [Test]
    public void The_field_map_points_a_format_at_other_field_names()
    {
        using var dir = new TempDirectory();
        string plain = WriteLines(dir, "a.jsonl", """{"instruction": "Say hi.", "output": "hi"}""");
        string renamed = WriteLines(dir, "b.jsonl", """{"question": "Say hi.", "answer": "hi", "instruction": "ignored"}""");
        var reference = DatasetLoader.Load(Options(plain), Gpt2, Gpt2Vocab).Train[0];
        LoadedDataset mapped = DatasetLoader.Load(Options(renamed) with { FieldMap = "instruction=question, output=answer" }, Gpt2, Gpt2Vocab);
        Assert.That(mapped.Format, Is.EqualTo("alpaca"));
        Assert.That(mapped.Train[0].InputIds, Is.EqualTo(reference.InputIds));
        Assert.That(mapped.Train[0].Labels, Is.EqualTo(reference.Labels));
    }

    [Test]
    public void Custom_uses_the_prompt_template_and_the_response_field()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "c.jsonl", """{"question": "2+2?", "topic": "math", "answer": "4", "n": 7}""");
        var options = Options(path) with { FieldMap = "response=answer", PromptTemplate = "[{topic} #{n}] Q: {question} {not a placeholder}\nA: " };
        LoadedDataset data = DatasetLoader.Load(options, new CharTokenizer(), 1000);
        Assert.That(data.Format, Is.EqualTo("custom"));
        var t = new CharTokenizer();
        int[] prompt = Concat([1], t.Encode("[math #7] Q: 2+2? {not a placeholder}\nA: "));
        Assert.That(data.Train[0].InputIds, Is.EqualTo(Concat(prompt, t.Encode("4"), [2])));
        Assert.That(data.Train[0].Labels, Is.EqualTo(Concat(Masked(prompt.Length), t.Encode("4"), [2])));

        var mapped = DatasetLoader.Load(Options(path) with { FieldMap = "prompt=question,response=answer" }, t, 1000);
        Assert.That(mapped.Format, Is.EqualTo("custom"));
        Assert.That(mapped.Train[0].InputIds, Is.EqualTo(Concat([1], t.Encode("2+2?"), t.Encode("4"), [2])));
    }

    [Test]
    public void The_validation_split_is_deterministic_disjoint_and_complete()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "p.jsonl", Enumerable.Range(0, 20).Select(i => $$"""{"input_ids": [{{i}}, {{i}}]}""").ToArray());
        LoadedDataset a = DatasetLoader.Load(Options(path, 0.2), null, 100);
        LoadedDataset b = DatasetLoader.Load(Options(path, 0.2), null, 100);
        LoadedDataset other = DatasetLoader.Load(Options(path, 0.2) with { Seed = 7 }, null, 100);
        static int[] Firsts(IReadOnlyList<TokenizedExample> part) => part.Select(e => e.InputIds[0]).ToArray();
        Assert.That(Firsts(a.Validation), Has.Length.EqualTo(4));
        Assert.That(Firsts(a.Train), Has.Length.EqualTo(16));
        Assert.That(Firsts(a.Train).Concat(Firsts(a.Validation)).Order(), Is.EqualTo(Enumerable.Range(0, 20)));
        Assert.That(Firsts(a.Train), Is.Ordered, "the training part keeps the file's order");
        Assert.That(Firsts(b.Validation), Is.EqualTo(Firsts(a.Validation)));
        Assert.That(Firsts(other.Validation), Is.Not.EqualTo(Firsts(a.Validation)));

        Assert.That(DatasetLoader.Load(Options(path, 0), null, 100).Validation, Is.Empty);
        Assert.That(DatasetLoader.Load(Options(path, 0.001), null, 100).Validation, Has.Count.EqualTo(1));
        string two = WriteLines(dir, "two.jsonl", """{"input_ids": [1]}""", """{"input_ids": [2]}""");
        LoadedDataset small = DatasetLoader.Load(Options(two, 0.9), null, 100);
        Assert.That((small.Train.Count, small.Validation.Count), Is.EqualTo((1, 1)));
    }

    [Test]
    public void A_separate_validation_file_is_used_whole()
    {
        using var dir = new TempDirectory();
        string train = WriteLines(dir, "train.jsonl", """{"input_ids": [1]}""", """{"input_ids": [2]}""");
        string validation = WriteLines(dir, "val.jsonl", """{"input_ids": [3]}""");
        LoadedDataset data = DatasetLoader.Load(Options(train, 0.5) with { ValidationDataset = validation }, null, 100);
        Assert.That(data.Train, Has.Count.EqualTo(2));
        Assert.That(data.Validation.Single().InputIds, Is.EqualTo(new[] { 3 }));
    }

    [Test]
    public void The_demo_dataset_is_embedded_in_the_cli_and_loads_as_balanced_alpaca()
    {
        using Stream stream = System.Reflection.Assembly.Load("CudaFinetune").GetManifestResourceStream("CudaFinetune.Demo.demo-sentiment.jsonl")
            ?? throw new AssertionException("the CLI does not embed CudaFinetune.Demo.demo-sentiment.jsonl");
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        Assert.That(bytes, Has.Length.LessThan(200 * 1024));
        LoadedDataset data = DatasetLoader.Load(new() { Dataset = null, ValidationFraction = 0.1 }, Gpt2, Gpt2Vocab, bytes, "demo-sentiment.jsonl");
        Assert.That(data.Format, Is.EqualTo("alpaca"));
        Assert.That(data.Train.Count + data.Validation.Count, Is.InRange(400, 600));
        int positive = Gpt2.Encode("positive")[0];
        int negative = Gpt2.Encode("negative")[0];
        var answers = data.Train.Concat(data.Validation).Select(e => e.Labels.First(l => l != -100)).ToList();
        Assert.That(answers, Is.All.AnyOf(positive, negative));
        Assert.That(answers.Count(a => a == positive), Is.EqualTo(answers.Count / 2));
    }
}
