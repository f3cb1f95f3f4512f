using System.Text;
using System.Text.RegularExpressions;
using CudaFinetune.Tests.Support;
using CudaFinetune.Tokenizers;
using NUnit.Framework;
using static CudaFinetune.Tests.Tokenizers.SmallTokenizerJson;

namespace CudaFinetune.Tests.Tokenizers;

/// <summary>
/// tokenizer.json fuzzed as the other user files are (<see cref="FileFuzz"/>): byte mutations of both flavours and
/// hostile values in every field each load — and then encode and decode a text — or are refused with one message
/// naming the file; never another exception or a hang.
/// </summary>
[TestFixture]
public sealed class TokenizerFuzzTests : TempDirectoryFixture
{
    /// <summary>A tokenizer of a few hundred tokens builds dictionaries, a regex and its caches: a few MiB, not more.</summary>
    private const long AllocationBudget = 64 << 20;

    private static readonly byte[] JsonBytes = Encoding.UTF8.GetBytes("{}[]\",:0123456789-.eE \\u");

    /// <summary>Values a broken or malicious file could hold in place of any JSON value of the seed.</summary>
    private static readonly string[] HostileValues =
    [
        "null", "true", "-1", "0", "2147483648", "1e400", "1.5", "\"\"", "\"x\"", "\"\\ud800\"", "[]", "{}", "[null]", "[[[]]]",
        "{\"a\": {\"b\": []}}", "\"" + new string('a', 5000) + "\"", "\"(\"", "\"(a|aa)+$\"", "\"\\u0000\"",
    ];

    /// <summary>Scalars and arrays/objects with no nesting inside: enough to hit every field of the seed.</summary>
    private static readonly Regex JsonValue = new(@"(?<value>""(?:[^""\\]|\\.)*""|-?\d+(?:\.\d+)?|true|false|null|\[[^\[\]{}]*\]|\{[^\[\]{}]*\})", RegexOptions.Compiled);

    /// <summary>Loads the model directory's tokenizer and runs it on the sample, as a dataset load would.</summary>
    private void LoadAndUse(string path)
    {
        var tokenizer = HfTokenizer.Load(Path.GetDirectoryName(path)!);
        _ = tokenizer.Decode(tokenizer.Encode(Sample));
    }

    [TestCase(false, 600)]
    [TestCase(true, 600)]
    public void Byte_mutations_load_or_are_refused(bool tiktoken, int cases)
    {
        string path = WriteModelDir(Dir.File("model"), Text(tiktoken));
        byte[] seed = File.ReadAllBytes(path);
        Assert.DoesNotThrow(() => LoadAndUse(path), "the seed is a valid tokenizer");
        var random = new Random(tiktoken ? 91 : 92);
        FileFuzz.AssertBothOutcomes(FileFuzz.Run(path, cases, () => ByteMutations.Mutate(seed, random, random.Next(1, 4), JsonBytes, maxCut: 16), LoadAndUse, AllocationBudget), cases);
    }

    [TestCase(false, 600)]
    [TestCase(true, 600)]
    public void Hostile_values_load_or_are_refused(bool tiktoken, int cases)
    {
        string path = WriteModelDir(Dir.File("model"), Text(tiktoken));
        string seed = File.ReadAllText(path);
        var values = JsonValue.Matches(seed);
        var random = new Random(tiktoken ? 93 : 94);
        FileFuzz.AssertBothOutcomes(FileFuzz.Run(path, cases, () => FileFuzz.ReplaceValue(seed, values, HostileValues, random), LoadAndUse, AllocationBudget), cases);
    }
}
