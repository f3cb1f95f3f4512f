using CudaFinetune.Config;
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

/// <summary>The learning-rate schedule the run was following (with where a resume took its decay up again, if one did).</summary>
public sealed record SchedulerRecord(SchedulerKind Kind, double BaseLr, int WarmupSteps, long TotalSteps, double Gamma, ScheduleContinuation? Continuation = null)
{
    public static SchedulerRecord Of(LearningRateSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        return new(schedule.Kind, schedule.BaseLr, schedule.WarmupSteps, schedule.TotalSteps, schedule.Gamma, schedule.Continuation);
    }

    public LearningRateSchedule ToSchedule() => new(Kind, BaseLr, WarmupSteps, TotalSteps, Gamma, Continuation);
}

/// <summary>AdamW's settings and step count (its moments are tensors of the optimizer group).</summary>
public sealed record OptimizerRecord(double Beta1, double Beta2, double Epsilon, double WeightDecay, long StepCount);

/// <summary>One stretch of a run's history: the steps from <see cref="FromStep"/> on were trained on branch <see cref="Branch"/>.</summary>
/// <param name="Branch">32 hex digits, new for each fresh run and each branch; "" for checkpoints written before histories were recorded</param>
public sealed record HistorySegment(string Branch, long FromStep);

/// <summary>The checkpoint a run had saved (or resumed from) last when it wrote this one.</summary>
public sealed record CheckpointParent(string Name, string Id);

/// <summary>
/// Where a checkpoint sits in its run's history: the branches that led to it, oldest first (a run resumed from an earlier
/// checkpoint than its newest starts a new branch there), and its parent. A checkpoint at step s of branch b lies on the
/// history of this one when some segment i names b and <c>FromStep(i) ≤ s ≤ FromStep(i + 1)</c> (or this checkpoint's
/// step, for the last segment): so the chain is known even where retention has deleted checkpoints in between.
/// </summary>
public sealed record CheckpointLineage(IReadOnlyList<HistorySegment> Segments, CheckpointParent? Parent)
{
    /// <summary>For checkpoints written before format 3: one branch without a name, from step 0.</summary>
    public static CheckpointLineage Unrecorded { get; } = new([new HistorySegment("", 0)], null);

    /// <summary>The branch this checkpoint was written on.</summary>
    public string Branch => Segments[^1].Branch;

    /// <summary>Whether the checkpoint at <paramref name="step"/> of <paramref name="branch"/> lies on this history, which reaches <paramref name="headStep"/>.</summary>
    public bool Contains(string branch, long step, long headStep)
    {
        for (int i = 0; i < Segments.Count; i++)
        {
            long end = i + 1 < Segments.Count ? Segments[i + 1].FromStep : headStep;
            if (Segments[i].Branch == branch && Segments[i].FromStep <= step && step <= end)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>This history continued on a new branch <paramref name="branch"/> from <paramref name="step"/>.</summary>
    public CheckpointLineage BranchedAt(long step, string branch) => new([.. Segments, new HistorySegment(branch, step)], Parent);
}

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

    /// <summary>The run's history up to this checkpoint (format 3; older checkpoints: <see cref="CheckpointLineage.Unrecorded"/>).</summary>
    public CheckpointLineage Lineage { get; init; } = CheckpointLineage.Unrecorded;

    /// <summary>Whether <paramref name="other"/> lies on the history that led to this checkpoint (itself included).</summary>
    public bool HasInHistory(CheckpointManifest other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Lineage.Contains(other.Lineage.Branch, other.Training.Step, Training.Step);
    }

    /// <summary>The evaluation loss at this checkpoint's own step, if one ran there (what "best" retention compares).</summary>
    public double? EvalLossAtStep => Training.EvaluatedAt == Training.Step ? Training.LastEvalLoss : null;

    /// <summary>Bytes of all shards and files.</summary>
    public long TotalBytes => Shards.Sum(s => s.Length) + Files.Sum(f => f.Length);
}
