using CudaFinetune.Checkpoints;
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>What a finished run left in its output directory, in forms two runs can be compared by.</summary>
internal static class RunOutputs
{
    /// <summary>
    /// The run in <paramref name="actualDir"/> ended exactly as the one in <paramref name="expectedDir"/>: the same metrics.jsonl
    /// (every line once, in order, but for the wall-clock tokens_per_s), bitwise the same adapter and final optimizer state.
    /// </summary>
    public static void AssertSameRun(string expectedDir, string actualDir)
    {
        Assert.That(DeterministicMetrics.Read(actualDir), Is.EqualTo(DeterministicMetrics.Read(expectedDir)), "metrics.jsonl (without tokens_per_s)");
        Assert.That(Adapter(actualDir), Is.EqualTo(Adapter(expectedDir)), "adapter bytes");
        Assert.That(FinalState(actualDir), Is.EqualTo(FinalState(expectedDir)), "final weights and optimizer moments");
    }

    /// <summary>The saved adapter's bytes.</summary>
    public static byte[] Adapter(string outputDir) => File.ReadAllBytes(Path.Combine(outputDir, "adapter", "adapter_model.safetensors"));

    /// <summary>Group/name@first element → hash of every stored tensor or slice (weights and AdamW moments) of the run's last checkpoint.</summary>
    public static Dictionary<string, string> FinalState(string outputDir)
    {
        string latest = CheckpointStore.ReadLatest(CheckpointStore.CheckpointsDirectory(outputDir))!;
        var manifest = Checkpoint.Open(Path.Combine(CheckpointStore.CheckpointsDirectory(outputDir), latest)).Manifest;
        return manifest.Tensors.ToDictionary(t => $"{t.Group}/{t.Name}@{t.Elements.Start}", t => t.Hash);
    }
}
