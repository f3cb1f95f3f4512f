
namespace CudaFinetune.Training;

/// <summary>Where a finished (or interrupted) run left its results. Adapter or model are written only when the run finished.</summary>
public sealed record FinetuneResult(string OutputDir, TrainingOutcome Outcome, string MetricsPath, string? AdapterDir, string? ModelDir, string? LossChartPath, string? LastCheckpoint);
