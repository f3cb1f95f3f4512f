using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Training;

/// <summary>Schedules against the formulas of transformers' schedule lambdas and PyTorch's StepLR.</summary>
[TestFixture]
public sealed class LearningRateScheduleTests
{
    [Test]
    public void Linear_warmup_then_linear_decay_to_zero()
    {
        var s = new LearningRateSchedule(SchedulerKind.Linear, 1.0, warmupSteps: 4, totalSteps: 14, gamma: 0.85);
        Assert.That(s.At(0, 0), Is.EqualTo(0.0));
        Assert.That(s.At(2, 0), Is.EqualTo(0.5));
        Assert.That(s.At(4, 0), Is.EqualTo(1.0));
        Assert.That(s.At(9, 0), Is.EqualTo(0.5).Within(1e-15));
        Assert.That(s.At(14, 0), Is.EqualTo(0.0));
    }

    [Test]
    public void Cosine_follows_half_a_cosine_after_warmup()
    {
        var s = new LearningRateSchedule(SchedulerKind.Cosine, 2.0, warmupSteps: 0, totalSteps: 10, gamma: 0.85);
        Assert.That(s.At(0, 0), Is.EqualTo(2.0));
        Assert.That(s.At(5, 0), Is.EqualTo(1.0).Within(1e-12));
        Assert.That(s.At(10, 0), Is.EqualTo(0.0).Within(1e-12));
    }

    [Test]
    public void StepLR_multiplies_by_gamma_per_epoch_and_constant_stays()
    {
        var s = new LearningRateSchedule(SchedulerKind.StepLR, 1e-4, warmupSteps: 0, totalSteps: 100, gamma: 0.85);
        Assert.That(s.At(50, 0), Is.EqualTo(1e-4));
        Assert.That(s.At(50, 2), Is.EqualTo(1e-4 * 0.85 * 0.85).Within(1e-18));
        var c = new LearningRateSchedule(SchedulerKind.Constant, 3e-4, warmupSteps: 2, totalSteps: 100, gamma: 0.85);
        Assert.That(c.At(1, 0), Is.EqualTo(1.5e-4));
        Assert.That(c.At(99, 5), Is.EqualTo(3e-4));
    }
}
