using CudaFinetune.Data;
using CudaFinetune.Tensors;
using CudaFinetune.Training;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// One tensor of a checkpoint, or the stretch <see cref="Slice"/> of its flattened elements (a rank's part of a sharded
/// tensor; null: all of it): where its bytes are and what they hash to. <see cref="Shape"/> is always the whole tensor's.
/// </summary>
public sealed record CheckpointTensor(string Name, string Group, DType DType, IReadOnlyList<long> Shape, string File, long Offset, long Length, string Hash, TensorSlice? Slice = null)
{
    /// <summary>Elements of the whole tensor.</summary>
    public long TotalElements => Shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>The elements this entry holds.</summary>
    public TensorSlice Elements => Slice ?? new TensorSlice(0, TotalElements);
}

/// <summary>One binary shard file (a group's tensors written by one rank).</summary>
public sealed record CheckpointShard(string File, string Group, int Rank, long Length);

/// <summary>A non-tensor file of a checkpoint (metrics, model config), with its length and hash.</summary>
public sealed record CheckpointFile(string Path, long Length, string Hash);

/// <summary>The learning-rate schedule the run was following, and how far it was.</summary>
public sealed record SchedulerRecord(SchedulerKind Kind, double BaseLr, int WarmupSteps, long TotalSteps, double Gamma);

/// <summary>AdamW's settings and step count (its moments are tensors of the optimizer group).</summary>
public sealed record OptimizerRecord(double Beta1, double Beta2, double Epsilon, double WeightDecay, long StepCount);

/// <summary>Hashes that tell whether a resumed run has the same model and data.</summary>
public sealed record CheckpointFingerprints(string Model, string TrainData, string ValidationData);

/// <summary>The batch order: its settings and the hash of the current epoch's permutation.</summary>
public sealed record SamplerRecord(bool Shuffle, int BatchesPerEpoch, string OrderHash);

/// <summary>
/// Everything a checkpoint says about itself (manifest.json). <see cref="ConfigJson"/> is the resolved
/// run configuration as a JSON object with config-file keys, so it can be read back as a config.
/// </summary>
public sealed record CheckpointManifest
{
    public required int FormatVersion { get; init; }
    public required string CheckpointId { get; init; }
    public required string EngineVersion { get; init; }
    public required DateTimeOffset Created { get; init; }
    public required IReadOnlyList<KeyValuePair<string, string>> Environment { get; init; }
    public required string Backend { get; init; }

    /// <summary>Storage type of the saved weights.</summary>
    public required DType WeightDType { get; init; }

    /// <summary>Type of the fp32 master weights when they differ from the weights (null: the weights are the masters).</summary>
    public DType? MasterDType { get; init; }

    public required DType OptimizerDType { get; init; }
    public required int WorldSize { get; init; }
    public required CheckpointReason Reason { get; init; }
    public required TrainingState Training { get; init; }
    public required SamplerRecord Sampler { get; init; }
    public required SchedulerRecord Scheduler { get; init; }
    public required OptimizerRecord Optimizer { get; init; }
    public required CheckpointFingerprints Fingerprints { get; init; }
    public required string ConfigJson { get; init; }
    public required IReadOnlyList<CheckpointShard> Shards { get; init; }
    public required IReadOnlyList<CheckpointTensor> Tensors { get; init; }
    public required IReadOnlyList<CheckpointFile> Files { get; init; }

    /// <summary>The evaluation loss at this checkpoint's own step, if one ran there (what "best" retention compares).</summary>
    public double? EvalLossAtStep => Training.EvaluatedAt == Training.Step ? Training.LastEvalLoss : null;

    /// <summary>Bytes of all shards and files.</summary>
    public long TotalBytes => Shards.Sum(s => s.Length) + Files.Sum(f => f.Length);
}
