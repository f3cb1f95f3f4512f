using System.Text;
using CudaFinetune.Data;
using CudaFinetune.Errors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;
using static CudaFinetune.Tests.Data.DatasetTestSupport;

namespace CudaFinetune.Tests.Data;

/// <summary>
/// Hostile dataset files: thousands of random mutations (bytes flipped, inserted, deleted; quotes, commas, braces and
/// newlines dropped in) of valid CSV, JSONL and chat files. Each must load or be refused with one
/// <see cref="UserErrorException"/> — never another exception, a hang, or a crash.
/// </summary>
[TestFixture]
public sealed class DatasetFuzzTests
{
    private static readonly string[] Seeds =
    [
        "input,target\n\"he go, to school\",\"He goes to school.\"\nshe say hi,She says hi.\n\"multi\nline\",\"quoted \"\"x\"\"\"\n",
        "{\"instruction\": \"Add.\", \"input\": \"2 and 3\", \"output\": \"5\"}\n{\"dialogue\": \"A: hi\", \"summary\": \"greeting\"}\n",
        "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n",
        "{\"input_ids\": [5, 6, 7], \"labels\": [-100, 6, 7]}\n{\"text\": \"plain text \\u00e9\"}\n",
    ];

    private static readonly string[] Extensions = [".csv", ".jsonl", ".jsonl", ".json"];

    private static readonly byte[] Interesting = "\",{}[]\n\r\\:0-9eE\u00ff"u8.ToArray();

    [TestCase(0, 1500)]
    [TestCase(1, 1000)]
    [TestCase(2, 1000)]
    [TestCase(3, 1000)]
    public void Every_mutation_loads_or_is_refused_with_one_message(int seedIndex, int cases)
    {
        using var dir = new TempDirectory();
        var chars = new CharTokenizer();
        var random = new Random(1000 + seedIndex);
        byte[] seed = Encoding.UTF8.GetBytes(Seeds[seedIndex]);
        int refused = 0, loaded = 0;
        for (int i = 0; i < cases; i++)
        {
            byte[] input = ByteMutations.Mutate(seed, random, edits: random.Next(1, 6), Interesting, maxCut: 11);
            string path = dir.File($"case{Extensions[seedIndex]}");
            File.WriteAllBytes(path, input);
            try
            {
                var data = DatasetLoader.Load(Options(path), chars, chars.VocabSize);
                Assert.That(data.Train, Is.Not.Empty);
                loaded++;
            }
            catch (UserErrorException e)
            {
                Assert.That(e.Message, Does.Contain("case").Or.Contain("dataset").Or.Contain("token").Or.Contain("tokenizer"), $"case {i}: the message names the file or the problem");
                refused++;
            }
            catch (Exception e)
            {
                Assert.Fail($"case {i} ({Convert.ToBase64String(input)}): {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.That(refused, Is.GreaterThan(cases / 10), "the mutations do break files");
        TestContext.Out.WriteLine($"{loaded} loaded, {refused} refused");
    }
}
