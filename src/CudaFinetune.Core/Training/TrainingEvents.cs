using CudaFinetune.Checkpoints;

namespace CudaFinetune.Training;

/// <summary>Something a training run reports as it goes; subscribe through <see cref="Trainer.Progress"/>.</summary>
public abstract record TrainingEvent;

/// <summary>The run is about to take its first step (step <see cref="StartStep"/> + 1: more than 1 when resumed).</summary>
public sealed record TrainingStarted(long TotalSteps, int Epochs, int BatchesPerEpoch, long TrainableParameters, long StartStep) : TrainingEvent;

/// <summary>
/// One optimizer step finished. Loss is the mean of its micro-batches' mean losses; GradNorm is before clipping.
/// <see cref="Skipped"/>: the loss or the norm was not finite, so the update was not applied (<see cref="SkippedSteps"/> so far).
/// </summary>
public sealed record StepCompleted(long Step, long TotalSteps, int Epoch, double Loss, double LearningRate, double GradNorm,
    double TokensPerSecond, TimeSpan Elapsed, bool Skipped = false, long SkippedSteps = 0) : TrainingEvent;

/// <summary>An evaluation on the validation set finished (token-weighted mean loss).</summary>
public sealed record EvaluationCompleted(long Step, int Epoch, double EvalLoss, double EvalPerplexity, int Tokens) : TrainingEvent;

/// <summary>A checkpoint was committed to disk (reported on the training thread once its background write is done).</summary>
public sealed record CheckpointSaved(long Step, string Directory, long Bytes, TimeSpan WriteTime, CheckpointReason Reason) : TrainingEvent;

/// <summary>
/// A checkpoint could not be written (disk full, directory unwritable); nothing of it is left and the earlier ones are
/// intact. Training goes on and the next save tries again (<see cref="FailedInARow"/> failures so far).
/// </summary>
public sealed record CheckpointSaveFailed(long Step, string Reason, string? LastGood, int FailedInARow, int Rank) : TrainingEvent;

/// <summary>An epoch ended (1-based).</summary>
public sealed record EpochCompleted(int Epoch, long Step) : TrainingEvent;
