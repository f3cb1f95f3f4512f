namespace CudaFinetune.Training;

/// <summary>The names of a run's own files in its output directory (checkpoints/ is <see cref="Checkpoints.CheckpointStore"/>'s).</summary>
public static class RunFileNames
{
    public const string RunFileName = "run.json";
    public const string MetricsFileName = "metrics.jsonl";
    public const string LossChartFileName = "loss.png";

    /// <summary>Where a finished LoRA run writes its adapter (PEFT layout), and a full fine-tune its model.</summary>
    public const string AdapterDirectoryName = "adapter";
    public const string ModelDirectoryName = "model";
}
