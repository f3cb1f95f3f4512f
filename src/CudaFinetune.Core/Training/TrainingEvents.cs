namespace CudaFinetune.Training;

/// <summary>Something a training run reports as it goes; subscribe through <see cref="Trainer.Progress"/>.</summary>
public abstract record TrainingEvent;

/// <summary>The run is about to take its first step.</summary>
public sealed record TrainingStarted(long TotalSteps, int Epochs, int BatchesPerEpoch, long TrainableParameters) : TrainingEvent;

/// <summary>One optimizer step finished. Loss is the mean of its micro-batches' mean losses; GradNorm is before clipping.</summary>
public sealed record StepCompleted(long Step, long TotalSteps, int Epoch, double Loss, double LearningRate, double GradNorm,
    double TokensPerSecond, TimeSpan Elapsed) : TrainingEvent;

/// <summary>An evaluation on the validation set finished (token-weighted mean loss).</summary>
public sealed record EvaluationCompleted(long Step, int Epoch, double EvalLoss, double EvalPerplexity, int Tokens) : TrainingEvent;

/// <summary>An epoch ended (1-based).</summary>
public sealed record EpochCompleted(int Epoch, long Step) : TrainingEvent;
