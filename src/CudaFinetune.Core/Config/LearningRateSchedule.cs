using System.Globalization;
using CudaFinetune.Training;

namespace CudaFinetune.Config;

/// <summary>
/// Where a decaying schedule was taken up again when a resumed run changed its plan: from optimizer step
/// <see cref="FromStep"/> on, the decay's progress runs from <see cref="FromProgress"/> (0 = the peak, 1 = the floor) to 1
/// at the schedule's last step, evenly over the steps left.
/// </summary>
public sealed record ScheduleContinuation(long FromStep, double FromProgress);

/// <summary>
/// The learning rate of an optimizer step, as transformers' schedule lambdas and PyTorch's StepLR
/// compute it. <c>completedSteps</c> counts optimizer steps already taken (0 for the first), so a
/// linear warmup starts at 0 as in transformers.
/// </summary>
/// <remarks>
/// A run resumed with another length, learning rate or scheduler continues its schedule instead of jumping along a
/// curve drawn for another plan (<see cref="Continue"/>): the rest of a linear or cosine decay is stretched or squeezed
/// over the new remaining steps from the point it had reached (<see cref="Continuation"/>), so the rate goes on from where
/// it was to the floor at the new last step.
/// </remarks>
public sealed class LearningRateSchedule
{
    public LearningRateSchedule(SchedulerKind kind, double baseLr, int warmupSteps, long totalSteps, double gamma, ScheduleContinuation? continuation = null)
    {
        Kind = kind;
        BaseLr = baseLr;
        WarmupSteps = warmupSteps;
        TotalSteps = Math.Max(1, totalSteps);
        Gamma = gamma;
        Continuation = continuation;
    }

    public SchedulerKind Kind { get; }
    public double BaseLr { get; }
    public int WarmupSteps { get; }
    public long TotalSteps { get; }
    public double Gamma { get; }

    /// <summary>Set when a resumed run took the decay up again from where it stood (null: the schedule as first planned).</summary>
    public ScheduleContinuation? Continuation { get; }

    /// <summary>Whether the rate falls with the steps left (linear, cosine) rather than staying or falling per epoch.</summary>
    public bool Decays => Kind is SchedulerKind.Linear or SchedulerKind.Cosine;

    /// <param name="completedSteps">optimizer steps taken before this one</param>
    /// <param name="epoch">0-based epoch of this step (StepLR decays once per finished epoch)</param>
    public double At(long completedSteps, int epoch)
    {
        if (completedSteps < WarmupSteps)
        {
            double warm = (double)completedSteps / Math.Max(1, WarmupSteps);
            return BaseLr * warm * (Kind == SchedulerKind.StepLR ? Math.Pow(Gamma, epoch) : 1);
        }
        double progress = ProgressAt(completedSteps);
        return Kind switch
        {
            SchedulerKind.Constant => BaseLr,
            SchedulerKind.StepLR => BaseLr * Math.Pow(Gamma, epoch),
            SchedulerKind.Linear => BaseLr * Math.Max(0, 1 - progress),
            SchedulerKind.Cosine => BaseLr * Math.Max(0, 0.5 * (1 + Math.Cos(Math.PI * progress))),
            _ => throw new InvalidOperationException($"unknown schedule {Kind}"),
        };
    }

    /// <summary>How far the decay after the warmup has come at a step: 0 at its start, 1 at <see cref="TotalSteps"/>.</summary>
    public double ProgressAt(long completedSteps)
    {
        if (completedSteps < WarmupSteps)
        {
            return 0;
        }
        if (Continuation is { } c && completedSteps >= c.FromStep)
        {
            return c.FromProgress + ((1 - c.FromProgress) * (completedSteps - c.FromStep) / Math.Max(1, TotalSteps - c.FromStep));
        }
        return (double)(completedSteps - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
    }

    /// <summary>
    /// The schedule for a run resumed after <paramref name="completedSteps"/> steps of <paramref name="saved"/> with these
    /// settings and <paramref name="totalSteps"/> in all, and why it differs from the saved one (null: it is the saved one,
    /// so the run continues bit for bit). The rules (docs/resume.md):
    /// <list type="bullet">
    /// <item>same settings and length: the saved schedule;</item>
    /// <item>in the warmup, or constant / steplr (no dependence on the length): the schedule as if planned so from the start;</item>
    /// <item>another scheduler: the new one starts at this step from its peak (<paramref name="lr"/>) and reaches its floor at the last step;</item>
    /// <item>a linear or cosine decay that had ended (the run is extended past its planned end): a new decay from <paramref name="lr"/>;</item>
    /// <item>otherwise the rest of the decay, from the point it had reached, stretched or squeezed over the steps now left
    /// (a changed <paramref name="lr"/> scales it: it is the peak of the curve).</item>
    /// </list>
    /// </summary>
    public static (LearningRateSchedule Schedule, string? Change) Continue(LearningRateSchedule saved, long completedSteps,
        SchedulerKind kind, double lr, int warmupSteps, long totalSteps, double gamma)
    {
        ArgumentNullException.ThrowIfNull(saved);
        if (kind == saved.Kind && lr == saved.BaseLr && warmupSteps == saved.WarmupSteps && Math.Max(1, totalSteps) == saved.TotalSteps && gamma == saved.Gamma)
        {
            return (saved, null);
        }
        var plain = new LearningRateSchedule(kind, lr, warmupSteps, totalSteps, gamma);
        if (!plain.Decays || completedSteps < warmupSteps)
        {
            return (plain, "the schedule is recomputed for the new settings");
        }
        string name = Name(kind);
        if (kind != saved.Kind)
        {
            return (plain.ContinuedAt(completedSteps, 0), $"--scheduler changed from {Name(saved.Kind)} to {name}: a new {name} decay starts here from --lr {Rate(lr)}");
        }
        if (saved.Decays && completedSteps >= saved.TotalSteps)
        {
            return (plain.ContinuedAt(completedSteps, 0),
                $"the {name} schedule had reached its end at step {saved.TotalSteps}; the steps added now follow a new {name} decay from --lr {Rate(lr)} (pass --lr to choose its peak)");
        }
        return (plain.ContinuedAt(completedSteps, saved.ProgressAt(completedSteps)), $"the rest of the {name} decay is spread over the steps now left");
    }

    private LearningRateSchedule ContinuedAt(long step, double progress)
        => new(Kind, BaseLr, WarmupSteps, TotalSteps, Gamma, new ScheduleContinuation(step, progress));

    /// <summary>One line for people: the rate of the next step after <paramref name="completedSteps"/> and where it goes.</summary>
    public string DescribeFrom(long completedSteps, int epoch)
    {
        string next = Rate(At(completedSteps, epoch));
        string first = $"step {completedSteps + 1}";
        return Kind switch
        {
            SchedulerKind.Constant => $"constant lr {next} from {first}",
            SchedulerKind.StepLR => $"steplr: lr {next} at {first}, times {Gamma.ToString(CultureInfo.InvariantCulture)} after each epoch",
            _ when completedSteps < WarmupSteps => $"{Name(Kind)}: lr {next} at {first}, warming up to {Rate(BaseLr)} at step {WarmupSteps}, then falling to 0 at step {TotalSteps}",
            _ => $"{Name(Kind)}: lr {next} at {first}, falling to 0 at step {TotalSteps}",
        };
    }

    /// <summary>How the configuration spells a scheduler.</summary>
    public static string Name(SchedulerKind kind) => kind.ToString().ToLowerInvariant();

    /// <summary>A learning rate as the messages print it.</summary>
    public static string Rate(double lr) => lr.ToString("0.00#e+0", CultureInfo.InvariantCulture);
}
