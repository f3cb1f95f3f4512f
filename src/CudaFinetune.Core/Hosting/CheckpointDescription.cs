using System.Text.Json;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Training;

namespace CudaFinetune.Hosting;

/// <summary>What a run's checkpoint says about itself, beside the tensors (checkpoint-format.md's manifest).</summary>
internal static class CheckpointDescription
{
    /// <summary>
    /// The manifest of a checkpoint <paramref name="rank"/> writes at <paramref name="state"/>: the run's options (paths
    /// made absolute), environment, dtypes, training, sampler, schedule and optimizer state, and the fingerprints a resume
    /// checks against. The saver adds the shards, tensors, files and the parent.
    /// </summary>
    public static CheckpointManifest Describe(FinetuneSession session, TrainingRank rank, TrainingState state, CheckpointReason reason,
        CheckpointFingerprints fingerprints, CheckpointLineage lineage)
    {
        var optimizer = rank.Trainer.Optimizer;
        var (shuffle, batches) = (session.Options.Shuffle, session.TrainBatches.Count);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            FinetuneOptionsJson.Write(w, RunFiles.WithAbsolutePaths(session.Options));
        }
        return new CheckpointManifest
        {
            FormatVersion = CheckpointFormat.Version,
            CheckpointId = "",
            EngineVersion = RunEnvironment.EngineVersion,
            Created = DateTimeOffset.UtcNow,
            Environment = RunEnvironment.Describe(rank.Backend.Name),
            Backend = rank.Backend.Name,
            WeightDType = rank.Model.TrainableParameters[0].Value.DType,
            MasterDType = rank.Model.TrainableParameters[0].Master?.DType,
            OptimizerDType = optimizer.StateDType,
            WorldSize = session.Job.WorldSize,
            Reason = reason,
            Training = state,
            Sampler = new SamplerRecord(shuffle, batches, Fingerprints.Order(BatchSampler.Order(batches, state.Sampler.Seed, state.Epoch, shuffle))),
            Scheduler = SchedulerRecord.Of(rank.Trainer.Schedule),
            Optimizer = new OptimizerRecord(optimizer.Beta1, optimizer.Beta2, optimizer.Epsilon, optimizer.WeightDecay, optimizer.StepCount),
            Fingerprints = fingerprints,
            ConfigJson = System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan),
            Shards = [],
            Tensors = [],
            Files = [],
            Lineage = lineage, // the saver fills in the parent
        };
    }

    /// <summary>The files a checkpoint copies beside its tensors: the metrics so far and the base model's config.json.</summary>
    public static IReadOnlyList<CheckpointExtraFile> ExtraFiles(string modelDir, MetricsWriter metrics)
    {
        string modelConfig = Path.Combine(modelDir, "config.json");
        metrics.TryWriteHeld(); // lines a full disk held back belong to this checkpoint's steps
        return
        [
            new CheckpointExtraFile(CheckpointFormat.MetricsFileName, metrics.Path, metrics.Length),
            new CheckpointExtraFile(CheckpointFormat.ModelConfigFileName, modelConfig, new FileInfo(modelConfig).Length, FollowLinks: true),
        ];
    }
}
