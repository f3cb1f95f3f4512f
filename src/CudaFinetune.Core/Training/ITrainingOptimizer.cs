using CudaFinetune.Checkpoints;
using CudaFinetune.Tensors;

namespace CudaFinetune.Training;

/// <summary>
/// The optimizer as the trainer drives it, on one rank or on each of many: <see cref="ReduceGradients"/> makes the
/// accumulated gradients global and measures them, <see cref="Update"/> applies them, and <see cref="CheckpointPieces"/>
/// is what this rank saves and restores. <see cref="AdamWOptimizer"/> is the one-rank form, Distributed.ShardedAdamW
/// the ZeRO form.
/// </summary>
public interface ITrainingOptimizer : IDisposable
{
    double Beta1 { get; }
    double Beta2 { get; }
    double Epsilon { get; }
    double WeightDecay { get; }

    /// <summary>Updates taken so far (PyTorch's per-parameter "step").</summary>
    long StepCount { get; }

    /// <summary>Type of the moments (what a checkpoint records as the optimizer dtype).</summary>
    DType StateDType { get; }

    /// <summary>
    /// The trained weights at full precision (group model) and the moments (group optimizer) this rank holds: whole
    /// tensors on one rank, this rank's slices of them when sharded. Fixed for the optimizer's life.
    /// </summary>
    IReadOnlyList<CheckpointPiece> CheckpointPieces { get; }

    /// <summary>
    /// Passed to the rank's last backward pass of a step (null when there is nothing to overlap): told each stage the
    /// pass finishes, it may start combining those gradients while the pass goes on.
    /// </summary>
    Action<int>? GradientsReady { get; }

    /// <summary>Combines every rank's gradients as the step needs them and returns the global gradient norm.</summary>
    double ReduceGradients();

    /// <summary>One update from the reduced gradients times <paramref name="gradientScale"/> (the clipping factor).</summary>
    void Update(double learningRate, double gradientScale = 1);

    /// <summary>Continues the step count of a restored optimizer.</summary>
    void RestoreStepCount(long stepCount);

    /// <summary>After <see cref="CheckpointPieces"/> were filled from a checkpoint: brings the model's parameters in line with them.</summary>
    void PublishRestoredState();
}
