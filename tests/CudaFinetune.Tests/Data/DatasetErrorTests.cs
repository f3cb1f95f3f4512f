using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Errors;
using CudaFinetune.Tests.Support;
using CudaFinetune.Tokenizers;
using CudaFinetune.Training;
using NUnit.Framework;
using static CudaFinetune.Tests.Data.DatasetTestSupport;

namespace CudaFinetune.Tests.Data;

public sealed class DatasetErrorTests
{
    private static string Fails(FinetuneOptions options, ITokenizer? tokenizer = null, int vocabSize = 50257) =>
        Assert.Throws<UserErrorException>(() => DatasetLoader.Load(options, tokenizer ?? Gpt2, vocabSize))!.Message;

    [Test]
    public void A_missing_file_says_what_to_do()
    {
        using var dir = new TempDirectory();
        string path = dir.File("nope.jsonl");
        Assert.That(Fails(Options(path)), Does.Contain(path).And.Contain("no such file").And.Contain("--dataset"));
        Assert.That(Fails(new FinetuneOptions()), Does.Contain("--dataset"));
        string train = WriteLines(dir, "t.jsonl", """{"text": "x"}""");
        Assert.That(Fails(Options(train) with { ValidationDataset = dir.File("val.jsonl") }), Does.Contain("val.jsonl").And.Contain("--validation-dataset"));
    }

    [Test]
    public void Malformed_json_names_the_file_and_line()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "bad.jsonl", """{"text": "a"}""", "", """{"text": "b",}x""", """{"text": "c"}""");
        Assert.That(Fails(Options(path)), Does.Contain("bad.jsonl, line 3").And.Contain("malformed JSON"));

        string truncated = WriteLines(dir, "trunc.jsonl", """{"text": "a"}""", """{"text": "b"}""", """{"text": "c""");
        Assert.That(Fails(Options(truncated)), Does.Contain("trunc.jsonl, line 3"));

        string array = dir.File("bad.json");
        File.WriteAllText(array, "[\n  {\"text\": \"a\"},\n  {\"text\": oops}\n]\n");
        Assert.That(Fails(Options(array)), Does.Contain("bad.json, line 3").And.Contain("malformed JSON"));

        string notObject = WriteLines(dir, "arr.jsonl", """{"text": "a"}""", "[1, 2]");
        Assert.That(Fails(Options(notObject)), Does.Contain("line 2").And.Contain("JSON object"));
    }

    [Test]
    public void A_record_of_no_known_format_lists_the_formats()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "odd.jsonl", """{"question": "q", "answer": "a"}""");
        string message = Fails(Options(path));
        Assert.That(message, Does.Contain("odd.jsonl, line 1").And.Contain("question, answer"));
        Assert.That(message, Does.Contain("input_ids").And.Contain("instruction").And.Contain("dialogue").And.Contain("'text'").And.Contain("response"));
        Assert.That(message, Does.Contain("--dataset-format").And.Contain("--field-map"));
    }

    [Test]
    public void Records_must_all_be_in_the_first_records_format()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "mixed.jsonl", """{"text": "a"}""", """{"text": "b"}""", """{"instruction": "x", "output": "y"}""");
        Assert.That(Fails(Options(path)), Does.Contain("mixed.jsonl, line 3").And.Contain("text"));
        string alpaca = WriteLines(dir, "a.jsonl", """{"instruction": "x", "output": "y"}""");
        Assert.That(Fails(Options(alpaca) with { DatasetFormat = "samsum" }), Does.Contain("line 1").And.Contain("'dialogue'").And.Contain("--dataset-format is samsum"));
    }

    [Test]
    public void Ids_outside_the_vocabulary_are_refused()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "p.jsonl", """{"input_ids": [1, 2]}""", """{"input_ids": [3, 100]}""");
        Assert.That(Fails(Options(path), null, vocabSize: 100), Does.Contain("p.jsonl, line 2").And.Contain("100").And.Contain("vocabulary"));
        string negative = WriteLines(dir, "n.jsonl", """{"input_ids": [-1]}""");
        Assert.That(Fails(Options(negative), null, vocabSize: 100), Does.Contain("-1"));
        string labels = WriteLines(dir, "l.jsonl", """{"input_ids": [1, 2], "labels": [-100, 250]}""");
        Assert.That(Fails(Options(labels), null, vocabSize: 100), Does.Contain("labels").And.Contain("250"));
        string length = WriteLines(dir, "len.jsonl", """{"input_ids": [1, 2], "labels": [2]}""");
        Assert.That(Fails(Options(length), null, vocabSize: 100), Does.Contain("1 entries").And.Contain("2"));
        string fractional = WriteLines(dir, "f.jsonl", """{"input_ids": [1.5]}""");
        Assert.That(Fails(Options(fractional), null, vocabSize: 100), Does.Contain("1.5"));
        // Text data with a tokenizer larger than the model's vocabulary.
        string text = WriteLines(dir, "t.jsonl", """{"text": "hello"}""");
        Assert.That(Fails(Options(text), Gpt2, vocabSize: 1024), Does.Contain("50257").And.Contain("1024"));
    }

    [Test]
    public void An_empty_dataset_is_refused()
    {
        using var dir = new TempDirectory();
        string empty = dir.File("empty.jsonl");
        File.WriteAllText(empty, "");
        Assert.That(Fails(Options(empty)), Does.Contain("empty.jsonl").And.Contain("no records"));
        string blank = WriteLines(dir, "blank.jsonl", "", "   ", "\t");
        Assert.That(Fails(Options(blank)), Does.Contain("no records"));
        string array = dir.File("empty.json");
        File.WriteAllText(array, "[]");
        Assert.That(Fails(Options(array)), Does.Contain("no records"));
        string emptyIds = WriteLines(dir, "ids.jsonl", """{"input_ids": []}""");
        Assert.That(Fails(Options(emptyIds), null, 10), Does.Contain("empty"));
    }

    [Test]
    public void Text_without_a_tokenizer_points_at_pretokenized_data()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "a.jsonl", """{"instruction": "x", "output": "y"}""");
        string message = Assert.Throws<UserErrorException>(() => DatasetLoader.Load(Options(path), null, 100))!.Message;
        Assert.That(message, Does.Contain("tokenizer").And.Contain("input_ids").And.Contain("tokenizer_config.json"));
    }

    [Test]
    public void Bad_options_are_named()
    {
        using var dir = new TempDirectory();
        string path = WriteLines(dir, "a.jsonl", """{"instruction": "x", "output": "y"}""");
        Assert.That(Fails(Options(path) with { FieldMap = "instruction" }), Does.Contain("--field-map"));
        Assert.That(Fails(Options(path) with { FieldMap = "question=instruction" }), Does.Contain("'question'").And.Contain("instruction"));
        Assert.That(Fails(Options(path) with { DatasetFormat = "alpaca", PromptTemplate = "{x}" }), Does.Contain("--prompt-template"));
        Assert.That(Fails(Options(path) with { PromptTemplate = "Q: {question}" }), Does.Contain("line 1").And.Contain("'response'"));
        string custom = WriteLines(dir, "c.jsonl", """{"q": "x", "response": "y"}""");
        Assert.That(Fails(Options(custom) with { PromptTemplate = "Q: {question}" }), Does.Contain("line 1").And.Contain("{question}"));
        string wrongType = WriteLines(dir, "w.jsonl", """{"text": 5}""");
        Assert.That(Fails(Options(wrongType)), Does.Contain("line 1").And.Contain("'text'").And.Contain("string"));
        string csv = WriteLines(dir, "data.csv", "a,b");
        Assert.That(Fails(Options(csv)), Does.Contain(".jsonl"));
    }
}
