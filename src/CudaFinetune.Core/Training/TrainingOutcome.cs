using CudaFinetune.Reporting;

namespace CudaFinetune.Training;

/// <summary>
/// What a finished (or cancelled) training run reached. <see cref="SkippedSteps"/>: steps not applied because their loss or
/// gradient norm was not finite; <see cref="NonFinite"/>: set when such steps stopped the run (it is then Cancelled too).
/// </summary>
public sealed record TrainingOutcome(long Steps, int EpochsCompleted, double? LastLoss, double? LastEvalLoss, bool Cancelled,
    long SkippedSteps = 0, NonFiniteStop? NonFinite = null);

/// <summary>
/// Why a run stopped on non-finite values: steps <see cref="FirstStep"/>…<see cref="LastStep"/> (1-based) had a NaN or infinite
/// loss or gradient norm (the last one's are given); the checkpoint written then holds the weights from before them.
/// <see cref="Evaluation"/>: instead, the evaluation after step <see cref="LastStep"/> gave a NaN or infinite loss (with
/// --skip-nonfinite false), and the checkpoint holds the state of that step.
/// </summary>
public sealed record NonFiniteStop(long FirstStep, long LastStep, double Loss, double GradNorm, bool Skipping, bool Evaluation = false)
{
    /// <summary>The one-line reason, without the checkpoint.</summary>
    public string Describe()
    {
        if (Evaluation)
        {
            return $"the evaluation after step {LastStep} gave a NaN or infinite loss, so the model's weights have gone bad and the run stopped (--skip-nonfinite false); "
                + "lower --lr or set --gradient-clipping, and continue from an earlier checkpoint";
        }
        string values = $"loss {MetricsFile.Format(Loss)}, gradient norm {MetricsFile.Format(GradNorm)}";
        return Skipping
            ? $"steps {FirstStep} to {LastStep} in a row had a NaN or infinite loss or gradient norm (the last: {values}); none of them was applied, and "
                + $"{LastStep - FirstStep + 1} in a row means the model or the data is broken, not one unlucky batch (check the model's weights for NaN/Inf, lower --lr)"
            : $"step {LastStep} had a NaN or infinite loss or gradient norm ({values}); it was not applied and the run stopped (--skip-nonfinite false); "
                + "lower --lr, set --gradient-clipping, or check the data near this step";
    }
}
