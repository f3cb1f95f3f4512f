using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.IO;
using CudaFinetune.Reporting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Checkpoints;

/// <summary>
/// A run's checkpoints form a history, not a sort by step: resuming from an earlier checkpoint starts a new branch whose
/// checkpoints resume, export, list and retention follow from <c>latest</c>, while the branch left behind is kept whole
/// in <c>branches/</c>; a missing <c>latest</c> is reported the same way by every reader.
/// </summary>
[TestFixture]
public sealed class RunHistoryTests : LearnableTaskFixture
{
    // 10 batches per epoch, 3 epochs: checkpoints at 3, 6, 9, 10 (epoch end), 12, 15, 18, 20, 21, 24, 27, 30.
    private FinetuneOptions Options(string name) => LearnableTask.Options(ModelDir, DataFile, Dir.File(name)) with
    {
        NumEpochs = 3,
        SaveEvery = 3,
        KeepLast = 0,
        EvalEvery = 0,
        Scheduler = SchedulerKind.Cosine,
        Lr = 1e-2,
    };

    private string CheckpointOf(string run, long step) => Path.Combine(CheckpointStore.CheckpointsDirectory(Dir.File(run)), CheckpointFormat.DirectoryNameFor(step));

    private static List<long> Steps(string checkpointsDir) => [.. CheckpointStore.Directories(checkpointsDir).Select(d => Checkpoint.Open(d).Manifest.Training.Step).Order()];

    /// <summary>The tour's case: copy a finished run, branch from an early checkpoint with another learning rate, stop it, continue it.</summary>
    [Test]
    public void A_branch_from_an_earlier_checkpoint_is_what_resume_export_list_and_retention_follow()
    {
        var reference = TrainingRuns.Train(Options("ref"));
        Assert.That(reference.Outcome.Steps, Is.EqualTo(30));
        DirectoryTrees.Copy(reference.OutputDir, Dir.File("br"));

        var stopped = TrainingRuns.Train(Options("br") with { Lr = 5e-3, KeepLast = 2 }, new ResumeRequest(CheckpointOf("br", 6)), cancelAfter: 14,
            setUp: session => Assert.That(session.Resumed!.Branch, Does.Contain("branches from step-00000006").And.Contain("step-00000030")));
        Assert.That(stopped.Outcome.Steps, Is.EqualTo(14));

        // The branch left behind is whole in branches/, with its own latest, metrics and adapter: an output directory of its own.
        var archived = RunBranching.SetAsideBranches(Dir.File("br"));
        Assert.That(archived, Has.Count.EqualTo(1));
        Assert.That(Steps(CheckpointStore.CheckpointsDirectory(archived[0])), Is.EqualTo(new long[] { 9, 10, 12, 15, 18, 20, 21, 24, 27, 30 }));
        Assert.That(CheckpointStore.ReadLatest(CheckpointStore.CheckpointsDirectory(archived[0])), Is.EqualTo("step-00000030"));
        Assert.That(File.ReadAllBytes(Path.Combine(archived[0], "metrics.jsonl")), Is.EqualTo(File.ReadAllBytes(Path.Combine(reference.OutputDir, "metrics.jsonl"))));
        Assert.That(RunOutputs.Adapter(archived[0]), Is.EqualTo(RunOutputs.Adapter(reference.OutputDir)));

        // checkpoints/ holds the live history only; keep-last 2 kept the new branch's two newest and its best by eval loss (the epoch end, 10).
        string live = CheckpointStore.CheckpointsDirectory(Dir.File("br"));
        Assert.That(Steps(live), Is.EqualTo(new long[] { 10, 12, 14 }));
        Assert.That(CheckpointStore.ReadLatest(live), Is.EqualTo("step-00000014"));
        var head = Checkpoint.Open(CheckpointOf("br", 14)).Manifest;
        Assert.That(head.Lineage.Segments, Has.Count.EqualTo(2));
        Assert.That(head.Lineage.Segments[1].FromStep, Is.EqualTo(6));
        Assert.That(head.Lineage.Parent!.Name, Is.EqualTo("step-00000012"));
        Assert.That(Checkpoint.Open(CheckpointOf("br", 12)).Manifest.Lineage.Parent!.Name, Is.EqualTo("step-00000010"));

        // metrics.jsonl: the live branch's steps 1..14 once each, the first 6 the reference's own.
        var steps = MetricsFile.ReadStepLosses(stopped.MetricsPath).ToList();
        Assert.That(steps.Select(s => s.Step), Is.EqualTo(Enumerable.Range(1, 14).Select(i => (long)i)));
        var referenceSteps = MetricsFile.ReadStepLosses(reference.MetricsPath).ToList();
        Assert.That(steps.Take(6), Is.EqualTo(referenceSteps.Take(6)));

        // Resume and export of the output directory follow latest (step 14), not the highest step of any branch.
        var saved = FinetuneSession.ReadResumeOptions(Dir.File("br"));
        Assert.That(saved.Lr, Is.EqualTo(5e-3));
        FinetuneResult finished;
        using (var session = FinetuneSession.Open(saved, new ResumeRequest(Dir.File("br"))))
        {
            Assert.That(session.Resumed!.Step, Is.EqualTo(14));
            Assert.That(session.Resumed.Branch, Is.Null, "continuing the live head is no branch");
            finished = session.Train();
        }
        Assert.That(finished.Outcome.Steps, Is.EqualTo(30));
        Assert.That(MetricsFile.ReadStepLosses(finished.MetricsPath).Select(s => s.Step), Is.EqualTo(Enumerable.Range(1, 30).Select(i => (long)i)));
        Assert.That(Checkpoint.Open(CheckpointOf("br", 30)).Manifest.Lineage.Segments, Has.Count.EqualTo(2));
        Assert.That(RunBranching.SetAsideBranches(Dir.File("br")), Has.Count.EqualTo(1));
        Assert.That(CheckpointExport.ToPeft(Dir.File("br"), Dir.File("exported")), Is.EqualTo(CheckpointOf("br", 30)));
        Assert.That(File.ReadAllBytes(Path.Combine(Dir.File("exported"), "adapter_model.safetensors")), Is.EqualTo(RunOutputs.Adapter(finished.OutputDir)));
        Assert.That(RunOutputs.Adapter(finished.OutputDir), Is.Not.EqualTo(RunOutputs.Adapter(reference.OutputDir)), "the branch trained with its own learning rate");

        // The branch set aside still resumes and exports as the run it was.
        Assert.That(CheckpointExport.ToPeft(archived[0], Dir.File("old")), Does.EndWith("step-00000030"));
        Assert.That(File.ReadAllBytes(Path.Combine(Dir.File("old"), "adapter_model.safetensors")), Is.EqualTo(RunOutputs.Adapter(reference.OutputDir)));
    }

    [Test]
    public void A_checkpoint_of_another_branch_left_in_checkpoints_is_listed_as_such_and_set_aside_by_the_next_run()
    {
        TrainingRuns.Train(Options("run") with { MaxSteps = 12 });
        TrainingRuns.Train(Options("run") with { MaxSteps = 12, Lr = 5e-3 }, new ResumeRequest(CheckpointOf("run", 6)), cancelAfter: 8);
        // Put the old branch back, as a crash in the middle of setting it aside would have left it.
        string archive = RunBranching.SetAsideBranches(Dir.File("run")).Single();
        foreach (string old in CheckpointStore.Directories(CheckpointStore.CheckpointsDirectory(archive)))
        {
            Directory.Move(old, CheckpointOf("run", Checkpoint.Open(old).Manifest.Training.Step));
        }
        var listings = CheckpointStore.List(Dir.File("run"));
        Assert.That(listings.Where(l => !l.OnChain).Select(l => l.Step), Is.EqualTo(new long[] { 9, 10, 12 }));
        Assert.That(listings.Single(l => l.Latest).Step, Is.EqualTo(8));

        using (var session = FinetuneSession.Open(Options("run") with { MaxSteps = 12, Lr = 5e-3 }, new ResumeRequest(Dir.File("run"))))
        {
            Assert.That(session.Resumed!.Step, Is.EqualTo(8));
            Assert.That(session.Resumed.Branch, Does.Contain("of another branch"));
            session.Train();
        }
        Assert.That(CheckpointStore.List(Dir.File("run")).All(l => l.OnChain), Is.True);
        Assert.That(RunBranching.SetAsideBranches(Dir.File("run")), Has.Count.EqualTo(2));
    }

    [Test]
    public void A_latest_that_names_a_deleted_checkpoint_is_reported_by_every_reader_and_refused_with_strict()
    {
        TrainingRuns.Train(Options("run") with { MaxSteps = 12 });
        Directory.Delete(CheckpointOf("run", 12), recursive: true);

        var candidates = CheckpointStore.Resolve(Dir.File("run"));
        Assert.That(candidates.LatestProblem, Does.Contain("latest names 'step-00000012', which is not there").And.Contain("taking step-00000010"));
        Assert.That(CheckpointExport.ToPeft(Dir.File("run"), Dir.File("exported")), Is.EqualTo(CheckpointOf("run", 10)));
        var e = Assert.Throws<UserErrorException>(() => FinetuneSession.Open(Options("run") with { MaxSteps = 14 }, new ResumeRequest(Dir.File("run"), Strict: true)).Dispose());
        Assert.That(e!.Message, Does.Contain("--strict").And.Contain("step-00000012"));
        using var session = FinetuneSession.Open(Options("run") with { MaxSteps = 14 }, new ResumeRequest(Dir.File("run")));
        Assert.That(session.Resumed!.Step, Is.EqualTo(10));
        Assert.That(session.Resumed.Warnings, Has.Some.Contains("which is not there"));
    }

    [Test]
    public void Branches_that_no_latest_tells_apart_must_be_named()
    {
        TrainingRuns.Train(Options("run") with { MaxSteps = 12 });
        TrainingRuns.Train(Options("run") with { MaxSteps = 12, Lr = 5e-3 }, new ResumeRequest(CheckpointOf("run", 6)), cancelAfter: 8);
        string archive = RunBranching.SetAsideBranches(Dir.File("run")).Single();
        Directory.Move(Path.Combine(CheckpointStore.CheckpointsDirectory(archive), "step-00000012"), CheckpointOf("run", 12));
        File.Delete(Path.Combine(CheckpointStore.CheckpointsDirectory(Dir.File("run")), CheckpointFormat.LatestFileName));

        var e = Assert.Throws<UserErrorException>(() => CheckpointStore.Resolve(Dir.File("run")));
        Assert.That(e!.Message, Does.Contain("latest is missing").And.Contain("2 branches").And.Contain("step-00000012").And.Contain("step-00000008"));
        Assert.That(CheckpointStore.ApplyRetention(CheckpointStore.CheckpointsDirectory(Dir.File("run")), 1), Is.Empty, "nothing is deleted while the live branch is unknown");
    }

    [Test]
    public void A_damaged_head_falls_back_on_the_same_branch_without_setting_anything_aside()
    {
        TrainingRuns.Train(Options("run") with { MaxSteps = 9 });
        CheckpointDamage.FlipByteInTensor(CheckpointOf("run", 9));
        Assert.That(CheckpointExport.ToPeft(Dir.File("run"), Dir.File("exported")), Is.EqualTo(CheckpointOf("run", 6)), "export falls back as resume does");
        using (var session = FinetuneSession.Open(Options("run") with { MaxSteps = 12 }, new ResumeRequest(Dir.File("run"))))
        {
            Assert.That(session.Resumed!.Step, Is.EqualTo(6));
            Assert.That(session.Resumed.Branch, Is.Null);
            session.Train();
        }
        Assert.That(RunBranching.SetAsideBranches(Dir.File("run")), Is.Empty);
        Assert.That(Checkpoint.Open(CheckpointOf("run", 12)).Manifest.Lineage.Segments, Has.Count.EqualTo(1));
    }
}
