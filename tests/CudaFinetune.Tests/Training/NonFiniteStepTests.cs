using System.Text.Json;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Training;

/// <summary>
/// A NaN in a gradient (injected after the backward pass, where a numerical fault would appear) never reaches the weights:
/// with --skip-nonfinite (the default) the step is skipped, counted and the run goes on; without it the run stops with a
/// checkpoint of the state before the step, from which a resumed run finishes as a run that never had the fault.
/// </summary>
[TestFixture]
public sealed class NonFiniteStepTests : LearnableTaskFixture
{
    private FinetuneOptions Options(string name) => LearnableTask.Options(ModelDir, DataFile, Dir.File(name)) with
    {
        NumEpochs = 3,
        EvalEvery = 0,
        SaveEvery = 1,
        KeepLast = 0,
        GradientClipping = 1.0,
    };

    /// <summary>Trains with a NaN written into the first trainable gradient at each of <paramref name="faultySteps"/>.</summary>
    private static FinetuneResult TrainWithFaults(FinetuneOptions options, Func<long, bool> faultySteps, ResumeRequest? resume = null, long cancelAfter = -1)
        => TrainingRuns.Train(options, resume, cancelAfter, session => session.Trainer.AfterBackwardPass = (step, _) =>
        {
            if (faultySteps(step))
            {
                session.Model.TrainableParameters[0].Gradient!.HostSpan<float>()[0] = float.NaN;
            }
        });

    private static Dictionary<string, string> StateAt(string outputDir, long step)
    {
        var manifest = Checkpoint.Open(Path.Combine(CheckpointStore.CheckpointsDirectory(outputDir), CheckpointFormat.DirectoryNameFor(step))).Manifest;
        return manifest.Tensors.ToDictionary(t => $"{t.Group}/{t.Name}@{t.Elements.Start}", t => t.Hash);
    }

    private static JsonElement[] StepLines(string outputDir)
        => [.. File.ReadAllLines(Path.Combine(outputDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).Where(e => e.TryGetProperty("loss", out _))];

    [Test]
    public void A_step_with_a_nan_gradient_is_skipped_counted_and_leaves_weights_and_moments_untouched()
    {
        var result = TrainWithFaults(Options("run"), step => step == 4);

        Assert.That(result.Outcome.Cancelled, Is.False);
        Assert.That(result.Outcome.SkippedSteps, Is.EqualTo(1));
        Assert.That(StateAt(result.OutputDir, 4), Is.EqualTo(StateAt(result.OutputDir, 3)), "step 4 changed no weight and no AdamW moment");
        Assert.That(StateAt(result.OutputDir, 5), Is.Not.EqualTo(StateAt(result.OutputDir, 4)), "training went on after it");
        var lines = StepLines(result.OutputDir);
        var skipped = lines.Single(l => l.TryGetProperty("skipped", out _));
        Assert.That(skipped.GetProperty("step").GetInt64(), Is.EqualTo(4));
        Assert.That(skipped.GetProperty("grad_norm").ValueKind, Is.EqualTo(JsonValueKind.Null), "the NaN norm is written as null");
        Assert.That(lines[^1].GetProperty("loss").GetDouble(), Is.LessThan(lines[0].GetProperty("loss").GetDouble()), "the run still learned");
        var end = Checkpoint.Open(result.LastCheckpoint!).Manifest;
        Assert.That(end.Training.SkippedSteps, Is.EqualTo(1), "the count is part of the checkpointed state");
    }

    [Test]
    public void A_run_with_a_skipped_step_resumes_to_the_same_result()
    {
        var reference = TrainWithFaults(Options("reference"), step => step == 4);
        var stopped = TrainWithFaults(Options("resumed"), step => step == 4, cancelAfter: 6);
        Assert.That(stopped.Outcome.Cancelled, Is.True);

        var resumed = TrainWithFaults(Options("resumed"), step => step == 4, new ResumeRequest(Dir.File("resumed")));

        Assert.That(resumed.Outcome.SkippedSteps, Is.EqualTo(1), "the count came back from the checkpoint");
        RunOutputs.AssertSameRun(reference.OutputDir, resumed.OutputDir);
    }

    [Test]
    public void Without_skipping_the_run_stops_with_the_state_before_the_step_and_resumes_as_if_the_fault_never_happened()
    {
        var clean = Options("clean") with { SaveEvery = 0 };
        var reference = TrainingRuns.Train(clean);

        var faulty = clean with { OutputDir = Dir.File("faulty"), SkipNonfinite = false };
        var error = Assert.Throws<UserErrorException>(() => TrainWithFaults(faulty, step => step == 4));

        string checkpoint = Path.Combine(CheckpointStore.CheckpointsDirectory(faulty.OutputDir), CheckpointFormat.DirectoryNameFor(3));
        Assert.That(error!.Message, Does.Contain("step 4").And.Contain("--skip-nonfinite false").And.Contain(checkpoint));
        var manifest = Checkpoint.Open(checkpoint).Manifest;
        Assert.That(manifest.Reason, Is.EqualTo(CheckpointReason.NonFinite));
        Assert.That(manifest.Training.Step, Is.EqualTo(3));
        Assert.That(StepLines(faulty.OutputDir).Select(l => l.GetProperty("step").GetInt64()), Is.EqualTo(new long[] { 1, 2, 3 }), "no line for the step that was not applied");

        var resumed = TrainingRuns.Train(faulty, new ResumeRequest(faulty.OutputDir));
        Assert.That(resumed.Outcome.SkippedSteps, Is.Zero);
        RunOutputs.AssertSameRun(reference.OutputDir, resumed.OutputDir);
    }

    [Test]
    public void A_nan_on_one_rank_is_skipped_by_every_rank()
    {
        // Rank 1's gradient is poisoned in the first of its two passes of step 2, before its buckets are handed over: the
        // sharded optimizer's norm is over all ranks, so both ranks skip, and every rank's shard of step 2 equals step 1's.
        var options = Options("ranks") with { WorldSize = 2, GradientAccumulationSteps = 2, NumEpochs = 2 };
        using var session = FinetuneSession.Open(options);
        var rank1 = session.Ranks[1];
        rank1.Trainer.AfterBackwardPass = (step, last) =>
        {
            if (step == 2 && !last)
            {
                rank1.Model.TrainableParameters[0].Gradient!.HostSpan<float>()[0] = float.NaN;
            }
        };
        var result = session.Train();

        Assert.That(result.Outcome.SkippedSteps, Is.EqualTo(1));
        Assert.That(StateAt(result.OutputDir, 2), Is.EqualTo(StateAt(result.OutputDir, 1)), "no rank applied step 2");
        Assert.That(StateAt(result.OutputDir, 3), Is.Not.EqualTo(StateAt(result.OutputDir, 2)));
        Assert.That(StepLines(result.OutputDir).Single(l => l.TryGetProperty("skipped", out _)).GetProperty("step").GetInt64(), Is.EqualTo(2));
    }

    [Test]
    public void Non_finite_steps_in_a_row_stop_even_a_skipping_run()
    {
        var options = Options("broken") with { SaveEvery = 0, NumEpochs = 20 };
        var error = Assert.Throws<UserErrorException>(() => TrainWithFaults(options, step => step >= 3));

        long last = 2 + Trainer.MaxSkippedInARow;
        Assert.That(error!.Message, Does.Contain($"steps 3 to {last} in a row"));
        var listing = CheckpointStore.List(options.OutputDir).Single(l => l.Manifest!.Reason == CheckpointReason.NonFinite);
        Assert.That(listing.Manifest!.Reason, Is.EqualTo(CheckpointReason.NonFinite));
        Assert.That(listing.Manifest.Training.Step, Is.EqualTo(last));
        Assert.That(listing.Manifest.Training.SkippedSteps, Is.EqualTo(Trainer.MaxSkippedInARow));
    }
}
