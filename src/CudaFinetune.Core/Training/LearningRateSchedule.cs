namespace CudaFinetune.Training;

/// <summary>
/// The learning rate of an optimizer step, as transformers' schedule lambdas and PyTorch's StepLR
/// compute it. <c>completedSteps</c> counts optimizer steps already taken (0 for the first), so a
/// linear warmup starts at 0 as in transformers.
/// </summary>
public sealed class LearningRateSchedule
{
    public LearningRateSchedule(SchedulerKind kind, double baseLr, int warmupSteps, long totalSteps, double gamma)
    {
        Kind = kind;
        BaseLr = baseLr;
        WarmupSteps = warmupSteps;
        TotalSteps = Math.Max(1, totalSteps);
        Gamma = gamma;
    }

    public SchedulerKind Kind { get; }
    public double BaseLr { get; }
    public int WarmupSteps { get; }
    public long TotalSteps { get; }
    public double Gamma { get; }

    /// <param name="completedSteps">optimizer steps taken before this one</param>
    /// <param name="epoch">0-based epoch of this step (StepLR decays once per finished epoch)</param>
    public double At(long completedSteps, int epoch)
    {
        if (completedSteps < WarmupSteps)
        {
            double warm = (double)completedSteps / Math.Max(1, WarmupSteps);
            return BaseLr * warm * (Kind == SchedulerKind.StepLR ? Math.Pow(Gamma, epoch) : 1);
        }
        double progress = (double)(completedSteps - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return Kind switch
        {
            SchedulerKind.Constant => BaseLr,
            SchedulerKind.StepLR => BaseLr * Math.Pow(Gamma, epoch),
            SchedulerKind.Linear => BaseLr * Math.Max(0, 1 - progress),
            SchedulerKind.Cosine => BaseLr * Math.Max(0, 0.5 * (1 + Math.Cos(Math.PI * progress))),
            _ => throw new InvalidOperationException($"unknown schedule {Kind}"),
        };
    }
}
