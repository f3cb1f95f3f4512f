using CudaFinetune.Checkpoints;
using CudaFinetune.Cli;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Checkpoints;

/// <summary>
/// Reading an output directory while a run saves into it (and retention retires old checkpoints): checkpoints being
/// written or retired are skipped, never reported invalid, and no reader fails with a raw path error.
/// </summary>
[TestFixture]
public sealed class LiveDirectoryReaderTests : LearnableTaskFixture
{
    /// <summary>Steps of the run read while it saves; CUDAFINETUNE_LIVE_READ_STEPS asks for more (the long version in docs/reliability.md).</summary>
    private static int Steps => int.TryParse(Environment.GetEnvironmentVariable("CUDAFINETUNE_LIVE_READ_STEPS"), out int n) && n > 0 ? n : 60;

    /// <summary>The most rounds of reading while the run trains: the loop ends with the run or here, whichever comes first, however the threads are scheduled.</summary>
    private static int MaxRounds => 50 * Steps;

    private string Checkpoints => CheckpointStore.CheckpointsDirectory(Dir.File("out"));

    /// <summary>
    /// Saves after every step, keeping two, while this thread lists, opens and verifies what it finds and runs
    /// <c>checkpoint list</c> and <c>verify</c>. Only what holds under any interleaving is asserted: nothing read is ever
    /// invalid, no exception but a checkpoint's removal, and the commands never exit 2 or print INVALID.
    /// </summary>
    [Test]
    public void Listing_and_verifying_while_a_run_saves_and_retires_checkpoints_gives_no_false_alarm()
    {
        var options = LearnableTask.Options(ModelDir, DataFile, Dir.File("out")) with { MaxSteps = Steps, NumEpochs = 1000, SaveEvery = 1, KeepLast = 2, EvalEvery = 7 };
        using var firstSave = new ManualResetEventSlim();
        var training = Task.Factory.StartNew(() => TrainingRuns.Train(options, setUp: session => session.Progress += e =>
        {
            if (e is CheckpointSaved)
            {
                firstSave.Set();
            }
        }), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        // The rounds start with the first checkpoint (or the run's end, should it fail first), not on an empty directory.
        WaitHandle.WaitAny([firstSave.WaitHandle, ((IAsyncResult)training).AsyncWaitHandle]);
        int lists = 0, verifies = 0, removed = 0, commands = 0;
        for (int round = 0; round < MaxRounds && !training.IsCompleted; round++)
        {
            foreach (var listing in CheckpointStore.List(Dir.File("out")))
            {
                Assert.That(listing.Problem, Is.Null, $"round {round}: {listing.Name} listed as invalid");
            }
            lists++;
            foreach (string dir in CheckpointStore.Directories(Checkpoints))
            {
                try
                {
                    Checkpoint.Open(dir).Verify();
                    verifies++;
                }
                catch (CheckpointRemovedException)
                {
                    removed++; // retired by retention between the listing and the read: skipped, as every reader does
                }
            }
            if (round % 10 == 0)
            {
                commands++;
                var list = CliRuns.Run(["checkpoint", "list", Dir.File("out")]);
                Assert.That(list.Code, Is.Zero, $"round {round}: checkpoint list\n{list.Out}{list.Err}");
                Assert.That(list.Out, Does.Not.Contain("INVALID"));
                if (CheckpointStore.Directories(Checkpoints).Count > 0)
                {
                    // A reader starved while every checkpoint it found is retired may end without one to verify (exit 1 saying
                    // so, or 2 "no checkpoints there"), which no scheduling rules out; what never happens is "invalid" or a raw error.
                    var verify = CliRuns.Run(["checkpoint", "verify", Dir.File("out")]);
                    string said = $"round {round}: checkpoint verify\n{verify.Out}{verify.Err}";
                    Assert.That(verify.Out, Does.Not.Contain("invalid:"), said);
                    if (verify.Code != 0)
                    {
                        Assert.That(verify.Out + verify.Err, Does.Contain("removed while being read").Or.Contain("no checkpoints there"), said);
                    }
                }
            }
        }
        var result = training.Result; // rethrows what the run threw
        Assert.That(result.Outcome.Steps, Is.EqualTo(Steps));
        var final = CheckpointStore.List(Dir.File("out"));
        Assert.That(final.All(l => l.Valid), Is.True);
        Assert.That(final.Count, Is.InRange(2, 3), "two kept, and the best by eval loss when older");
        TestContext.Out.WriteLine($"{lists} lists, {verifies} verifies during saves ({removed} checkpoints skipped as retired, {commands} rounds of list and verify commands), 0 false alarms");
    }

    [Test]
    public void A_checkpoint_retired_after_the_history_was_read_is_left_out_of_the_listing()
    {
        for (int step = 3; step <= 5; step++)
        {
            TestCheckpoints.Write(Dir.File("out"), step);
        }
        var history = RunHistory.Read(Checkpoints);
        var oldest = history.Entries.Single(e => e.Name == "step-00000003");
        Retire(oldest.Directory);

        var listings = CheckpointStore.List(history);
        Assert.That(listings.Select(l => l.Name), Is.EqualTo(new[] { "step-00000004", "step-00000005" }));
        Assert.That(listings.All(l => l.Valid), Is.True);
        var e = Assert.Throws<CheckpointRemovedException>(oldest.Checkpoint!.Verify)!;
        Assert.That(e.Message, Does.Contain("step-00000003").And.Contain("removed or replaced while being read"));
        Assert.That(Assert.Throws<CheckpointRemovedException>(() => Checkpoint.Open(oldest.Directory))!.Message, Does.Contain("no such directory"));
    }

    /// <summary>
    /// A save of a step already on disk renames the old checkpoint away and the new one into place: read with the old
    /// manifest, the new shards belong to another checkpoint, which is not damage (Linux tells directories apart by inode).
    /// </summary>
    [Test]
    [Platform("Linux")]
    public void A_checkpoint_replaced_by_a_newer_save_of_its_step_while_it_is_read_is_skipped_not_invalid()
    {
        string dir = TestCheckpoints.Write(Dir.File("out"), step: 5);
        var opened = Checkpoint.Open(dir);
        Retire(dir);
        TestCheckpoints.Write(Dir.File("out"), step: 5, seed: 2);

        var e = Assert.Throws<CheckpointRemovedException>(opened.Verify)!;
        Assert.That(e.Message, Does.Contain("removed or replaced while being read").And.Contain("rank-00000.bin"));
        Assert.DoesNotThrow(Checkpoint.Open(dir).Verify, "the new checkpoint itself is valid");
    }

    [Test]
    public void Checkpoints_being_written_or_retired_are_never_listed_and_the_next_run_removes_them()
    {
        TestCheckpoints.Write(Dir.File("out"), step: 3);
        string newest = TestCheckpoints.Write(Dir.File("out"), step: 5);
        // Half-written: only a shard so far. Half-deleted: the manifest left, the shards gone.
        string writing = Path.Combine(Checkpoints, ".tmp-step-00000006-0123456789abcdef0123456789abcdef");
        Directory.CreateDirectory(Path.Combine(writing, "model"));
        File.Copy(TestCheckpoints.ModelShard(newest), TestCheckpoints.ModelShard(writing));
        string retiring = Path.Combine(Checkpoints, ".deleting-step-00000002-0123456789abcdef0123456789abcdef");
        Directory.CreateDirectory(retiring);
        File.Copy(Path.Combine(newest, CheckpointFormat.ManifestFileName), Path.Combine(retiring, CheckpointFormat.ManifestFileName));

        var list = CliRuns.Run(["checkpoint", "list", Dir.File("out")]);
        Assert.That(list.Code, Is.Zero, list.Out + list.Err);
        Assert.That(list.Out, Does.Contain("step-00000003").And.Contain("step-00000005").And.Not.Contain("INVALID").And.Not.Contain("step-00000006").And.Not.Contain("step-00000002"));
        var verify = CliRuns.Run(["checkpoint", "verify", Dir.File("out")]);
        Assert.That(verify.Code, Is.Zero, verify.Out + verify.Err);
        Assert.That(verify.Out, Does.StartWith($"valid: {newest}"));

        CheckpointStore.RemoveIncomplete(Checkpoints);
        Assert.That(Directory.Exists(writing) || Directory.Exists(retiring), Is.False);
        Assert.That(CheckpointStore.Directories(Checkpoints).Select(Path.GetFileName), Is.EqualTo(new[] { "step-00000005", "step-00000003" }));
    }

    /// <summary>What retention does first: renames the checkpoint out of the step-N names.</summary>
    private void Retire(string dir)
        => Directory.Move(dir, Path.Combine(Checkpoints, $".deleting-{Path.GetFileName(dir)}-{Guid.NewGuid():N}"));
}
