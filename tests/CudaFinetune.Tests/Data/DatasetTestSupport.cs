using System.Text;
using CudaFinetune.Config;
using CudaFinetune.Tests.Support;
using CudaFinetune.Tokenizers;
using CudaFinetune.Training;

namespace CudaFinetune.Tests.Data;

/// <summary>A character tokenizer with a BOS: id = UTF-16 code unit + 3, BOS 1, EOS 2.</summary>
internal sealed class CharTokenizer : ITokenizer
{
    public string Name => "chars";

    public int VocabSize => 1000;

    public int? BosId => 1;

    public int EosId => 2;

    public IReadOnlyList<int> Encode(string text) => text.Select(c => c + 3).ToArray();

    public string Decode(IEnumerable<int> ids) => new(ids.Select(i => (char)(i - 3)).ToArray());
}

internal static class DatasetTestSupport
{
    public static readonly Gpt2Tokenizer Gpt2 = new();

    public static FinetuneOptions Options(string dataset, double validationFraction = 0) =>
        new() { Dataset = dataset, ValidationFraction = validationFraction };

    public static string WriteLines(TempDirectory dir, string name, params string[] lines)
    {
        string path = dir.File(name);
        File.WriteAllText(path, string.Join("\n", lines) + "\n", new UTF8Encoding(false));
        return path;
    }

    public static int[] Concat(params IEnumerable<int>[] parts) => parts.SelectMany(p => p).ToArray();

    public static int[] Masked(int count) => Enumerable.Repeat(-100, count).ToArray();
}
