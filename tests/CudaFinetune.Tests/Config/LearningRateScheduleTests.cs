using CudaFinetune.Config;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Config;

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

    [Test]
    public void An_unchanged_plan_continues_on_the_saved_schedule_itself()
    {
        var saved = new LearningRateSchedule(SchedulerKind.Cosine, 1e-3, warmupSteps: 5, totalSteps: 90, gamma: 0.85);
        var (schedule, change) = LearningRateSchedule.Continue(saved, 45, SchedulerKind.Cosine, 1e-3, 5, 90, 0.85);
        Assert.That(schedule, Is.SameAs(saved));
        Assert.That(change, Is.Null);
    }

    [TestCase(SchedulerKind.Cosine, 180)]
    [TestCase(SchedulerKind.Cosine, 60)]
    [TestCase(SchedulerKind.Linear, 180)]
    [TestCase(SchedulerKind.Linear, 50)]
    public void A_longer_or_shorter_plan_continues_the_decay_from_the_current_rate_to_zero_at_the_new_end(SchedulerKind kind, long total)
    {
        var saved = new LearningRateSchedule(kind, 1e-3, warmupSteps: 5, totalSteps: 90, gamma: 0.85);
        var (schedule, change) = LearningRateSchedule.Continue(saved, 45, kind, 1e-3, 5, total, 0.85);
        Assert.That(change, Is.Not.Null);
        Assert.That(schedule.At(45, 0), Is.EqualTo(saved.At(45, 0)).Within(1e-15), "no jump at the resumed step");
        Assert.That(schedule.At(total, 0), Is.EqualTo(0).Within(1e-15), "the floor at the new last step");
        for (long step = 45; step < total; step++)
        {
            Assert.That(schedule.At(step + 1, 0), Is.LessThanOrEqualTo(schedule.At(step, 0)), $"falling at step {step}");
        }
    }

    [Test]
    public void A_changed_lr_scales_the_rest_of_the_curve()
    {
        var saved = new LearningRateSchedule(SchedulerKind.Cosine, 1e-3, warmupSteps: 0, totalSteps: 90, gamma: 0.85);
        var (schedule, _) = LearningRateSchedule.Continue(saved, 30, SchedulerKind.Cosine, 5e-4, 0, 90, 0.85);
        for (long step = 30; step <= 90; step += 10)
        {
            Assert.That(schedule.At(step, 0), Is.EqualTo(saved.At(step, 0) / 2).Within(1e-15));
        }
    }

    [Test]
    public void An_ended_decay_that_is_extended_restarts_from_the_peak_and_says_so()
    {
        var saved = new LearningRateSchedule(SchedulerKind.Cosine, 1e-3, warmupSteps: 0, totalSteps: 90, gamma: 0.85);
        var (schedule, change) = LearningRateSchedule.Continue(saved, 90, SchedulerKind.Cosine, 1e-3, 0, 270, 0.85);
        Assert.That(change, Does.Contain("reached its end at step 90").And.Contain("1.00e-3"));
        Assert.That(schedule.At(90, 0), Is.EqualTo(1e-3));
        Assert.That(schedule.At(180, 0), Is.EqualTo(5e-4).Within(1e-15));
        Assert.That(schedule.At(270, 0), Is.EqualTo(0).Within(1e-15));
    }

    [Test]
    public void Another_scheduler_starts_at_its_peak_and_a_continued_schedule_survives_its_record()
    {
        var saved = new LearningRateSchedule(SchedulerKind.Constant, 1e-3, warmupSteps: 0, totalSteps: 90, gamma: 0.85);
        var (schedule, change) = LearningRateSchedule.Continue(saved, 30, SchedulerKind.Linear, 2e-3, 0, 90, 0.85);
        Assert.That(change, Does.Contain("from constant to linear"));
        Assert.That(schedule.At(30, 0), Is.EqualTo(2e-3));
        Assert.That(schedule.At(60, 0), Is.EqualTo(1e-3).Within(1e-15));
        var again = new LearningRateSchedule(schedule.Kind, schedule.BaseLr, schedule.WarmupSteps, schedule.TotalSteps, schedule.Gamma, schedule.Continuation);
        Assert.That(LearningRateSchedule.Continue(again, 50, SchedulerKind.Linear, 2e-3, 0, 90, 0.85).Change, Is.Null, "the same plan once more: no change");
        Assert.That(again.At(77, 0), Is.EqualTo(schedule.At(77, 0)));
    }
}
