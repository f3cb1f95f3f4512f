using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Training;

namespace CudaFinetune.Checkpoints;

/// <summary>
/// Where a training run stands between two optimizer steps: everything besides the weights and the
/// optimizer moments that the next step depends on. Dropout needs no RNG state of its own: its masks
/// are keyed by (seed, <see cref="MicroBatches"/>), and the sampler's order by (seed, epoch).
/// A checkpoint stores this record, so a resumed run continues bit for bit.
/// </summary>
public sealed record TrainingState
{
    /// <summary>Optimizer steps taken.</summary>
    public long Step { get; init; }

    /// <summary>Epoch (0-based) and position in it. After an epoch's end processing the sampler stands at the next epoch's start.</summary>
    public SamplerState Sampler { get; init; }

    /// <summary>Micro-batches run so far: the dropout key of the next one.</summary>
    public long MicroBatches { get; init; }

    /// <summary>Step of the last evaluation (-1: none yet).</summary>
    public long EvaluatedAt { get; init; } = -1;

    /// <summary>Loss of the last optimizer step.</summary>
    public double? LastLoss { get; init; }

    /// <summary>Result of the last evaluation.</summary>
    public double? LastEvalLoss { get; init; }

    /// <summary>Lowest evaluation loss so far.</summary>
    public double? BestEvalLoss { get; init; }

    /// <summary>Steps whose loss or gradient norm was not finite, counted and not applied (<see cref="FinetuneOptions.SkipNonfinite"/>).</summary>
    public long SkippedSteps { get; init; }

    /// <summary>0-based epoch the run is in (equals the number of epochs completed).</summary>
    public int Epoch => Sampler.Epoch;

    /// <summary>
    /// Epochs done, with the fraction of the current one (1.47: 47% of the second), for people: after an epoch's end the
    /// sampler already stands at the next epoch's start, so a whole number means that many epochs are complete.
    /// </summary>
    public double EpochsDone(int batchesPerEpoch) => Epoch + (batchesPerEpoch > 0 ? (double)Sampler.Cursor / batchesPerEpoch : 0);

    /// <summary>The state before the first step.</summary>
    public static TrainingState Start(ulong seed) => new() { Sampler = new SamplerState(seed, 0, 0) };
}

/// <summary>Why a checkpoint is written.</summary>
public enum CheckpointReason
{
    /// <summary>Every --save-every steps.</summary>
    Periodic,

    /// <summary>At the end of an epoch (after its evaluation).</summary>
    EpochEnd,

    /// <summary>When the run has done all its steps.</summary>
    End,

    /// <summary>After the step at which a stop was requested (SIGINT, SIGTERM, cancellation).</summary>
    Interrupted,

    /// <summary>The last good state, when a non-finite loss or gradient norm stopped the run.</summary>
    NonFinite,
}

/// <summary>Receives the trainer's requests to save a checkpoint of the current state.</summary>
public interface ITrainingCheckpoints
{
    /// <summary>Saves (or starts saving) the model, optimizer and <paramref name="state"/>; called on the training thread between steps.</summary>
    void Save(TrainingState state, CheckpointReason reason);
}
