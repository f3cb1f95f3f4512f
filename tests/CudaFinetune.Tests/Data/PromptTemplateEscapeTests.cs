using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;
using static CudaFinetune.Tests.Data.DatasetTestSupport;

namespace CudaFinetune.Tests.Data;

/// <summary>
/// --prompt-template's escapes: \n, \t and \\ typed as text (as a shell passes them) are a newline, a tab and a
/// backslash, so a template works the same on the command line, in YAML and in JSON, where "\n" is already a newline.
/// </summary>
[TestFixture]
public sealed class PromptTemplateEscapeTests : TempDirectoryFixture
{
    [TestCase(@"Q: {q}\nA: ", "Q: {q}\nA: ")]
    [TestCase(@"a\tb", "a\tb")]
    [TestCase(@"a\\nb", @"a\nb")]
    [TestCase(@"a\\\nb", "a\\\nb")]
    [TestCase(@"C:\data\x", @"C:\data\x")]
    [TestCase("trailing\\", "trailing\\")]
    [TestCase("real\nnewline", "real\nnewline")]
    public void Escapes_are_resolved_left_to_right_and_other_backslashes_stay(string typed, string meant)
    {
        Assert.That(DatasetFormatSpec.Unescape(typed), Is.EqualTo(meant));
    }

    [Test]
    public void Typed_escapes_a_json_newline_and_yaml_quoting_give_the_same_prompt()
    {
        string data = WriteLines(Dir, "qa.jsonl", """{"question": "2+2?", "answer": "4"}""");
        string json = Dir.File("run.json");
        File.WriteAllText(json, """{"prompt-template": "Q: {question}\nA: "}""");
        string yamlSingle = Dir.File("single.yaml");
        File.WriteAllText(yamlSingle, "prompt-template: 'Q: {question}\\nA: '\n");
        string yamlDouble = Dir.File("double.yaml");
        File.WriteAllText(yamlDouble, "prompt-template: \"Q: {question}\\nA: \"\n");

        var chars = new CharTokenizer();
        var start = Options(data) with { FieldMap = "response=answer" };
        int[] expected = Concat([1], chars.Encode("Q: 2+2?\nA: "), chars.Encode("4"), [2]);
        foreach (var (how, options) in new (string, FinetuneOptions)[]
        {
            ("typed in a shell", start with { PromptTemplate = @"Q: {question}\nA: " }),
            ("JSON config", RunConfigFile.Apply(start, json)),
            ("YAML single quotes", RunConfigFile.Apply(start, yamlSingle)),
            ("YAML double quotes", RunConfigFile.Apply(start, yamlDouble)),
        })
        {
            Assert.That(DatasetLoader.Load(options, chars, chars.VocabSize).Train.Single().InputIds, Is.EqualTo(expected), how);
        }
    }
}
