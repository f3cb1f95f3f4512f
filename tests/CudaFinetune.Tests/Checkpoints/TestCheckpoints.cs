using System.Text.RegularExpressions;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Tensors;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Checkpoints;

/// <summary>Small checkpoints written straight through <see cref="CheckpointWriter"/>, and ways to damage them.</summary>
internal static class TestCheckpoints
{
    /// <summary>Tensors of assorted shapes (one not a multiple of 4 KiB, one empty) filled from <paramref name="seed"/>.</summary>
    public static List<CheckpointPiece> Tensors(CpuBackend backend, int seed)
    {
        var rng = new Random(seed);
        var list = new List<CheckpointPiece>();
        void Add(string name, string group, params int[] shape)
        {
            var t = backend.Allocate(DType.F32, new Shape(shape));
            foreach (ref float x in t.HostSpan<float>())
            {
                x = (float)rng.NextDouble() - 0.5f;
            }
            list.Add(CheckpointPiece.Whole(name, group, t));
        }
        Add("layers.0.q.lora_A.weight", CheckpointFormat.ModelGroup, 8, 33);
        Add("layers.0.q.lora_B.weight", CheckpointFormat.ModelGroup, 40, 8);
        Add("empty", CheckpointFormat.ModelGroup, 0, 8);
        Add("layers.0.q.lora_A.weight.exp_avg", CheckpointFormat.OptimizerGroup, 8, 33);
        Add("layers.0.q.lora_A.weight.exp_avg_sq", CheckpointFormat.OptimizerGroup, 8, 33);
        Add("big", CheckpointFormat.OptimizerGroup, 3000);
        return list;
    }

    public static CheckpointManifest Manifest(long step, CheckpointReason reason = CheckpointReason.Periodic, double? evalLoss = null) => new()
    {
        FormatVersion = CheckpointFormat.Version,
        CheckpointId = "",
        EngineVersion = "test",
        Created = new DateTimeOffset(2026, 11, 28, 0, 0, 0, TimeSpan.Zero),
        Environment = [new("os", "test")],
        Backend = "cpu",
        WeightDType = DType.F32,
        OptimizerDType = DType.F32,
        WorldSize = 1,
        Reason = reason,
        Training = new TrainingState
        {
            Step = step,
            Sampler = new SamplerState(42, 1, 3),
            MicroBatches = 2 * step,
            EvaluatedAt = evalLoss is null ? -1 : step,
            LastLoss = 1.25,
            LastEvalLoss = evalLoss,
            BestEvalLoss = evalLoss,
        },
        Sampler = new SamplerRecord(true, 10, new string('a', 32)),
        Scheduler = new SchedulerRecord(SchedulerKind.Cosine, 1e-3, 2, 100, 0.85),
        Optimizer = new OptimizerRecord(0.9, 0.999, 1e-8, 0.01, step),
        Fingerprints = new CheckpointFingerprints(new string('1', 32), new string('2', 32), new string('3', 32)),
        ConfigJson = "{\"lr\": 0.001, \"seed\": 42}",
        Shards = [],
        Tensors = [],
        Files = [],
    };

    /// <summary>
    /// Writes a checkpoint of <see cref="Tensors"/> at <paramref name="step"/> under <paramref name="outputDir"/>/checkpoints; returns its directory.
    /// Its metrics.jsonl is copied from <paramref name="metrics"/> when given, else from two lines written into the output directory.
    /// </summary>
    /// <param name="ranks">this writer's place among several ranks (default: alone)</param>
    public static string Write(string outputDir, long step, int seed = 1, CheckpointExtraFile? metrics = null, CheckpointRanks? ranks = null)
    {
        using var backend = new CpuBackend(threads: 1);
        var tensors = Tensors(backend, seed);
        Directory.CreateDirectory(outputDir);
        if (metrics is null)
        {
            string path = Path.Combine(outputDir, "metrics.jsonl");
            File.WriteAllText(path, "{\"step\":1,\"loss\":2.5}\n{\"step\":2,\"loss\":2.25}\n");
            metrics = new CheckpointExtraFile(CheckpointFormat.MetricsFileName, path, new FileInfo(path).Length);
        }
        using var image = CheckpointImage.Create(tensors);
        image.Capture(backend);
        CommittedCheckpoint committed;
        try
        {
            committed = CheckpointWriter.Write(CheckpointStore.CheckpointsDirectory(outputDir), image, Manifest(step), [metrics], Guid.NewGuid().ToString("N"),
                ranks ?? CheckpointRanks.Alone)!;
        }
        finally
        {
            foreach (var t in tensors)
            {
                t.Data.Dispose();
            }
        }
        return committed.Directory;
    }

    public static string ModelShard(string checkpoint) => Path.Combine(checkpoint, CheckpointFormat.ShardFileName(CheckpointFormat.ModelGroup, 0));

    public static string OptimizerShard(string checkpoint) => Path.Combine(checkpoint, CheckpointFormat.ShardFileName(CheckpointFormat.OptimizerGroup, 0));
}

/// <summary>Deliberate damage to a checkpoint on disk.</summary>
internal static class CheckpointDamage
{
    /// <summary>Flips one bit in the middle of the first non-empty tensor of the model shard; returns the tensor's name.</summary>
    public static string FlipByteInTensor(string checkpoint)
    {
        var tensor = Checkpoint.Open(checkpoint).Manifest.Tensors.First(t => t.Group == CheckpointFormat.ModelGroup && t.Length > 0);
        FlipBit(Path.Combine(checkpoint, tensor.File), tensor.Offset + tensor.Length / 2);
        return tensor.Name;
    }

    /// <summary>
    /// Records <paramref name="content"/> as the length and hash of <paramref name="file"/> in the checkpoint's manifest and
    /// reseals it: what a deliberate edit would do, so that only the checks of the file itself can refuse it.
    /// </summary>
    public static void ResealFile(string checkpoint, string file, byte[] content)
    {
        string manifest = Path.Combine(checkpoint, CheckpointFormat.ManifestFileName);
        string text = File.ReadAllText(manifest);
        var entry = new Regex($"(\"path\": \"{Regex.Escape(file)}\",\\s*\"length\": )[0-9]+(,\\s*\"xxh128\": \")[0-9a-f]{{32}}\"");
        Assert.That(entry.IsMatch(text), Is.True, $"{file} is listed in the manifest");
        string edited = entry.Replace(text, m => $"{m.Groups[1].Value}{content.Length}{m.Groups[2].Value}{CheckpointFormat.Hash(content)}\"");
        File.WriteAllBytes(manifest, ManifestFuzzing.Reseal(edited));
    }

    public static void FlipBit(string file, long offset, int bit = 0)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        int b = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(b ^ (1 << bit)));
    }
}
