using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Hosting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Training;

/// <summary>
/// A resumed run whose plan changed (epochs, max-steps, data size, learning rate) counts its steps from where it stands,
/// continues its learning-rate schedule without an unannounced jump, and keeps the continued schedule across further
/// resumes; a resume with nothing left to do says so and writes nothing.
/// </summary>
[TestFixture]
public sealed class ChangedPlanTests : LearnableTaskFixture
{
    // 10 batches per epoch.
    private FinetuneOptions Options(string name) => LearnableTask.Options(ModelDir, DataFile, Dir.File(name)) with
    {
        NumEpochs = 1,
        SaveEvery = 4,
        KeepLast = 0,
        EvalEvery = 0,
        Scheduler = SchedulerKind.Cosine,
        Lr = 1e-2,
    };

    private static List<double> Rates(string metricsPath) => [.. File.ReadAllLines(metricsPath)
        .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
        .Where(e => e.TryGetProperty("lr", out _))
        .Select(e => e.GetProperty("lr").GetDouble())];

    [Test]
    public void More_epochs_after_a_finished_cosine_restart_the_decay_with_a_warning_that_gives_the_rates()
    {
        TrainingRuns.Train(Options("run"));
        var result = TrainingRuns.Train(Options("run") with { NumEpochs = 3 }, new ResumeRequest(Dir.File("run")), setUp: session =>
        {
            Assert.That(session.Trainer.TotalSteps, Is.EqualTo(30));
            Assert.That(session.Resumed!.Warnings, Has.Some.Contains("reached its end at step 10").And.Some.Contains("changes from").And.Some.Contains("1.00e-2"));
            Assert.That(session.Resumed.Schedule, Does.Contain("step 11").And.Contain("falling to 0 at step 30"));
        });
        var rates = Rates(result.MetricsPath);
        Assert.That(rates, Has.Count.EqualTo(30));
        Assert.That(rates[10], Is.EqualTo(1e-2), "the new decay starts at its peak");
        Assert.That(rates[^1], Is.LessThan(1e-4), "and ends near 0 at the new last step");
    }

    [Test]
    public void A_longer_plan_mid_decay_continues_from_the_current_rate_and_resumes_bit_for_bit_on_the_continued_schedule()
    {
        TrainingRuns.Train(Options("a") with { NumEpochs = 1 }, cancelAfter: 6);
        DirectoryTrees.Copy(Dir.File("a"), Dir.File("b"));

        var whole = TrainingRuns.Train(Options("a") with { NumEpochs = 3 }, new ResumeRequest(Dir.File("a")));
        var rates = Rates(whole.MetricsPath);
        var planned = new LearningRateSchedule(SchedulerKind.Cosine, 1e-2, 0, 10, 0.85);
        Assert.That(rates[6], Is.EqualTo(planned.At(6, 0)).Within(1e-15), "step 7 has the rate it would have had: no jump");
        Assert.That(rates.Skip(5).Zip(rates.Skip(6)).All(p => p.Second <= p.First), Is.True, "falling all the way");
        Assert.That(rates[^1], Is.LessThan(1e-4));
        Assert.That(Checkpoint.Open(whole.LastCheckpoint!).Manifest.Scheduler.Continuation, Is.EqualTo(new ScheduleContinuation(6, 0.6)));

        TrainingRuns.Train(Options("b") with { NumEpochs = 3 }, new ResumeRequest(Dir.File("b")), cancelAfter: 17);
        var resumed = TrainingRuns.Train(Options("b") with { NumEpochs = 3 }, new ResumeRequest(Dir.File("b")), setUp: session =>
            Assert.That(session.Resumed!.Warnings, Has.None.Contains("learning rate"), "the continued schedule came back from the checkpoint"));
        RunOutputs.AssertSameRun(whole.OutputDir, resumed.OutputDir);
    }

    [Test]
    public void Forced_data_of_another_size_counts_the_steps_that_will_run()
    {
        TrainingRuns.Train(Options("run") with { NumEpochs = 2 }, cancelAfter: 13);
        File.AppendAllLines(DataFile, File.ReadAllLines(DataFile)); // twice the examples
        long planned = 0;
        int batches = 0;
        var result = TrainingRuns.Train(Options("run") with { NumEpochs = 2 }, new ResumeRequest(Dir.File("run"), Force: true),
            setUp: session => (planned, batches) = (session.Trainer.TotalSteps, session.TrainBatches.Count));
        // Epoch 2 stood at batch 3 of 10; it now has more batches, each a step of its own.
        Assert.That(batches, Is.GreaterThan(10));
        Assert.That(planned, Is.EqualTo(13 + (batches - 3)));
        Assert.That(result.Outcome.Steps, Is.EqualTo(planned));
        Assert.That(Rates(result.MetricsPath)[^1], Is.LessThan(1e-4), "the cosine reaches its floor at the real end");
    }

    [Test]
    public void A_resume_with_nothing_left_to_do_says_why_and_changes_nothing_on_disk()
    {
        var first = TrainingRuns.Train(Options("run"));
        var before = DirectoryTrees.Snapshot(first.OutputDir);
        using var session = FinetuneSession.Open(Options("run") with { MaxSteps = 15 }, new ResumeRequest(Dir.File("run")));
        Assert.That(session.Resumed!.NothingToDo, Does.Contain("finished at step 10").And.Contain("epoch(s) are done").And.Contain("--max-steps 15 only caps"));
        var result = session.Train();
        Assert.That(result.Outcome.Steps, Is.EqualTo(10));
        Assert.That(result.AdapterDir, Is.EqualTo(first.AdapterDir));
        Assert.That(DirectoryTrees.Snapshot(first.OutputDir), Is.EqualTo(before));
    }
}
