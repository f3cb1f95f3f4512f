using CudaFinetune.Checkpoints;
using CudaFinetune.Cli;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.Reporting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Checkpoints;

/// <summary>
/// Saves that fail — the disk full (a real tmpfs filled to the last byte) or the checkpoints directory gone and replaced
/// by a file — never corrupt the run: the failure is reported, the earlier checkpoints stay valid, the next save tries
/// again, and a run whose disk recovered ends exactly as one that never had trouble. Three failures in a row stop the run
/// with a message naming the last good checkpoint, from which it resumes to the same result.
/// </summary>
[TestFixture]
public sealed class DiskTroubleTests : LearnableTaskFixture
{
    private FinetuneOptions Options(string outputDir) => LearnableTask.Options(ModelDir, DataFile, outputDir) with
    {
        NumEpochs = 3,
        SaveEvery = 2,
        KeepLast = 2,
        EvalEvery = 4,
    };

    /// <summary>Trains with <paramref name="onEvent"/> seeing every event (on the training thread, between steps and writes).</summary>
    private static FinetuneResult Train(FinetuneOptions options, Action<TrainingEvent> onEvent)
        => TrainingRuns.Train(options, setUp: session => session.Progress += onEvent);

    private static void AssertEveryCheckpointVerifies(string outputDir)
    {
        var listings = CheckpointStore.List(outputDir);
        Assert.That(listings, Is.Not.Empty);
        foreach (var listing in listings)
        {
            Assert.That(listing.Valid, Is.True, $"{listing.Directory}: {listing.Problem}");
            Checkpoint.Open(listing.Directory).Verify();
        }
        Assert.That(Directory.GetDirectories(CheckpointStore.CheckpointsDirectory(outputDir), CheckpointFormat.TemporaryPrefix + "*"), Is.Empty, "no half-written checkpoint is left");
    }

    /// <summary>Moves checkpoints/ aside and puts a file in its place, so that creating anything in it fails; and back.</summary>
    private sealed class BlockedCheckpoints(string outputDir)
    {
        private readonly string _dir = CheckpointStore.CheckpointsDirectory(outputDir);

        public bool Blocked { get; private set; }

        public void Block()
        {
            Directory.Move(_dir, _dir + ".aside");
            File.WriteAllText(_dir, "not a directory");
            Blocked = true;
        }

        public void Unblock()
        {
            File.Delete(_dir);
            Directory.Move(_dir + ".aside", _dir);
            Blocked = false;
        }
    }

    /// <summary>
    /// Trains in <paramref name="dir"/>, causing trouble once the step-2 checkpoint is saved and ending it at the first failure
    /// report (both events come between writes: the reported one is finished, the next not begun); then checks that exactly
    /// one later save failed, left nothing, and that the run ended as the untroubled reference.
    /// </summary>
    private void AssertOneFailedSaveIsSurvived(string dir, Action cause, Action end)
    {
        var reference = TrainingRuns.Train(Options(Dir.File("reference")));
        var failures = new List<CheckpointSaveFailed>();
        Train(Options(dir), e =>
        {
            if (e is CheckpointSaved { Step: 2 })
            {
                cause();
            }
            if (e is CheckpointSaveFailed failed)
            {
                failures.Add(failed);
                end();
            }
        });

        Assert.That(failures, Has.Count.EqualTo(1));
        long step = failures[0].Step;
        Assert.That(step, Is.GreaterThan(2));
        Assert.That(failures[0].LastGood, Does.EndWith(CheckpointFormat.DirectoryNameFor(2)));
        Assert.That(failures[0].Reason, Does.Contain($"step {step}"));
        Assert.That(Directory.Exists(Path.Combine(CheckpointStore.CheckpointsDirectory(dir), CheckpointFormat.DirectoryNameFor(step))), Is.False);
        AssertEveryCheckpointVerifies(dir);
        RunOutputs.AssertSameRun(reference.OutputDir, dir);
    }

    [Test]
    public void A_save_into_a_vanished_directory_is_reported_and_the_next_save_succeeds()
    {
        string dir = Dir.File("troubled");
        var blocker = new BlockedCheckpoints(dir);
        AssertOneFailedSaveIsSurvived(dir, blocker.Block, blocker.Unblock);
    }

    [Test]
    public void Three_failed_saves_in_a_row_stop_the_run_which_resumes_from_the_last_good_checkpoint()
    {
        var reference = TrainingRuns.Train(Options(Dir.File("reference")));
        string dir = Dir.File("troubled");
        var blocker = new BlockedCheckpoints(dir);
        int failures = 0;
        var error = Assert.Throws<UserErrorException>(() => Train(Options(dir), e =>
        {
            if (e is CheckpointSaved { Step: 2 })
            {
                blocker.Block();
            }
            failures += e is CheckpointSaveFailed ? 1 : 0;
        }));

        Assert.That(failures, Is.EqualTo(CheckpointSaver.MaxFailedInARow - 1), "the failures before the last were warnings");
        string lastGood = Path.Combine(CheckpointStore.CheckpointsDirectory(dir), CheckpointFormat.DirectoryNameFor(2));
        Assert.That(error!.Message, Does.Contain($"{CheckpointSaver.MaxFailedInARow} saves in a row failed").And.Contain(lastGood).And.Contain("--resume"));

        blocker.Unblock();
        AssertEveryCheckpointVerifies(dir);
        TrainingRuns.Train(Options(dir), new ResumeRequest(dir));
        RunOutputs.AssertSameRun(reference.OutputDir, dir);
    }

    [Test]
    public void A_full_disk_during_saves_and_metrics_is_survived_once_space_returns()
    {
        using var disk = SmallDisk.Mount(Dir.File("disk"), megabytes: 32);
        AssertOneFailedSaveIsSurvived(Path.Combine(disk.Path, "run"), disk.Fill, disk.Free);
    }

    [Test]
    public void Metrics_lines_a_full_disk_refuses_are_held_and_written_in_order_when_space_returns()
    {
        using var disk = SmallDisk.Mount(Dir.File("disk"), megabytes: 1);
        string path = Path.Combine(disk.Path, "metrics.jsonl");
        using (var writer = new MetricsWriter(path))
        {
            writer.Write(Step(1));
            disk.Fill();
            for (int step = 2; step <= 200; step++)
            {
                writer.Write(Step(step));
            }
            Assert.That(writer.HeldLines, Is.GreaterThan(0), "the full disk refused lines");
            Assert.That(new FileInfo(path).Length, Is.EqualTo(writer.Length), "nothing part-written is left in the file");
            Assert.That(MetricsFile.ReadStepLosses(path).Select(p => p.Step), Is.EqualTo(Enumerable.Range(1, 200 - writer.HeldLines).Select(i => (long)i)));
            disk.Free();
            writer.Write(Step(201));
            Assert.That(writer.HeldLines, Is.Zero);
        }
        Assert.That(MetricsFile.ReadStepLosses(path).Select(p => p.Step), Is.EqualTo(Enumerable.Range(1, 201).Select(i => (long)i)));

        static StepCompleted Step(long step) => new(step, 1000, 1, 1.0 / step, 1e-3, 0.5, 100, TimeSpan.FromSeconds(step));
    }

    [Test]
    public void When_the_adapter_cannot_be_written_the_error_names_the_checkpoint_that_holds_the_weights()
    {
        string dir = Dir.File("run");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "adapter"), "a file where the adapter directory goes");
        var options = Options(dir);

        var (code, _, error) = CliRuns.Run(["finetune", "--model", options.Model!, "--dataset", options.Dataset!, "--output-dir", dir,
            "--num-epochs", "1", "--batch-size", "4", "--context-length", "16", "--device", "cpu"]);

        Assert.That(code, Is.EqualTo(Program.ExitUserError), error);
        string message = error.Trim();
        Assert.That(message.Split('\n'), Has.Length.EqualTo(1), "one line, no stack trace");
        Assert.That(message, Does.StartWith("error: could not write the adapter").And.Contain("CudaFinetune export --checkpoint"));
        string checkpoint = CheckpointStore.List(dir).MaxBy(l => l.Step)!.Directory;
        Assert.That(message, Does.Contain(checkpoint));
        Checkpoint.Open(checkpoint).Verify();
    }

    [Test]
    public void A_save_two_ranks_fail_on_a_full_disk_leaves_no_temporary_directory_and_names_the_last_good_checkpoint_on_each()
    {
        using var disk = SmallDisk.Mount(Dir.File("disk"), megabytes: 32);
        string dir = Path.Combine(disk.Path, "run");
        var reference = TrainingRuns.Train(Options(Dir.File("reference")) with { WorldSize = 2 });
        var failures = new List<CheckpointSaveFailed>();
        Train(Options(dir) with { WorldSize = 2 }, e =>
        {
            if (e is CheckpointSaved { Step: 2 })
            {
                disk.Fill();
            }
            if (e is CheckpointSaveFailed failed)
            {
                failures.Add(failed);
                disk.Free();
            }
        });

        Assert.That(failures, Is.Not.Empty);
        foreach (var failure in failures)
        {
            Assert.That(failure.LastGood, Does.EndWith(CheckpointFormat.DirectoryNameFor(2)), $"rank {failure.Rank} knows the last good checkpoint");
        }
        AssertEveryCheckpointVerifies(dir);
        RunOutputs.AssertSameRun(reference.OutputDir, dir);
    }

    [Test]
    public void A_disk_full_before_the_run_starts_says_so()
    {
        using var disk = SmallDisk.Mount(Dir.File("disk"), megabytes: 1);
        disk.Fill();
        var options = Options(Path.Combine(disk.Path, "run"));

        var (code, _, error) = CliRuns.Run(["finetune", "--model", options.Model!, "--dataset", options.Dataset!, "--output-dir", options.OutputDir,
            "--num-epochs", "1", "--batch-size", "4", "--context-length", "16", "--device", "cpu"]);

        Assert.That(code, Is.EqualTo(Program.ExitUserError), error);
        Assert.That(error.Trim().Split('\n'), Has.Length.EqualTo(1), "one line, no stack trace");
        Assert.That(error, Does.Contain("no space left"));
    }

    [Test]
    public void Rank_0_stops_waiting_for_the_shards_of_a_rank_whose_process_has_ended()
    {
        // Without the look at the connections rank 0 would wait the whole timeout (here ten minutes) for a part that
        // cannot come, with the training thread blocked behind it at the next save.
        string dir = Dir.File("lonely");
        var ranks = new CheckpointRanks(0, 2, TimeSpan.FromMinutes(10), PeerStopped: () => true);
        var e = Assert.Throws<IOException>(() => TestCheckpoints.Write(dir, step: 4, ranks: ranks));
        Assert.That(e!.Message, Is.EqualTo("a rank stopped before rank 1 finished writing its shards of this checkpoint"));
        Assert.That(Directory.GetFileSystemEntries(CheckpointStore.CheckpointsDirectory(dir)), Is.Empty, "the abandoned write is removed");
    }
}
