using CudaFinetune.Checkpoints;

namespace CudaFinetune.Tests.Support;

/// <summary>What a finished run left in its output directory, in forms two runs can be compared by.</summary>
internal static class RunOutputs
{
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
