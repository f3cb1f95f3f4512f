using System.Text.RegularExpressions;

namespace CudaFinetune.Tests.Support;

/// <summary>A run's metrics.jsonl without its one wall-clock field (tokens_per_s): what two equal runs must write identically.</summary>
internal static partial class DeterministicMetrics
{
    public static string[] Read(string outputDir)
        => [.. File.ReadAllLines(Path.Combine(outputDir, "metrics.jsonl")).Select(line => Throughput().Replace(line, ""))];

    [GeneratedRegex(",\"tokens_per_s\":[^,}]*")]
    private static partial Regex Throughput();
}
