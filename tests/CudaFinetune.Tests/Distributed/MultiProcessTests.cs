using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Reporting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Distributed;

/// <summary>
/// The CLI started as a launcher starts it (torchrun's RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT), one process per
/// rank on the CPU: the processes meet at the rendezvous over loopback, exchange gradients over TCP, and train as one
/// rank with the same global batch; a rank left alone fails with a message, not a stack trace.
/// </summary>
[TestFixture]
[NonParallelizable] // several processes on two cores
public sealed class MultiProcessTests : LearnableTaskFixture
{
    private FinetuneOptions Options(string name) => LearnableTask.Options(ModelDir, DataFile, Dir.File(name)) with { NumEpochs = 2, SaveEvery = 2, KeepLast = 0, Shuffle = true };

    private string ConfigFile(FinetuneOptions options) => CliProcess.WriteConfig(Dir.File("config.json"), options);

    /// <summary>Starts the CLI as rank <paramref name="rank"/> of <paramref name="worldSize"/>, as torchrun would.</summary>
    private static (Process Process, StringBuilder Output) Launch(int rank, int worldSize, int port, params string[] args)
    {
        var output = new StringBuilder();
        var process = CliProcess.Start(output, args, new Dictionary<string, string>
        {
            ["RANK"] = rank.ToString(CultureInfo.InvariantCulture),
            ["LOCAL_RANK"] = rank.ToString(CultureInfo.InvariantCulture),
            ["WORLD_SIZE"] = worldSize.ToString(CultureInfo.InvariantCulture),
            ["MASTER_ADDR"] = "127.0.0.1",
            ["MASTER_PORT"] = port.ToString(CultureInfo.InvariantCulture),
        });
        return (process, output);
    }

    private static int Finish((Process Process, StringBuilder Output) launched, string what) => CliProcess.Finish(launched.Process, launched.Output, what);

    [Test]
    public void Two_launched_processes_train_as_one_rank_with_the_same_global_batch()
    {
        string config = ConfigFile(Options("launched"));
        int port = RankThreads.FreePort();
        var ranks = Enumerable.Range(0, 2).Select(r => Launch(r, 2, port, "finetune", "--config", config, "--dist-timeout", "120")).ToList();
        for (int r = 0; r < ranks.Count; r++)
        {
            Assert.That(Finish(ranks[r], $"rank {r}"), Is.Zero, $"rank {r}:\n{ranks[r].Output}");
        }
        Assert.That(ranks[0].Output.ToString(), Does.Contain("2 ranks on 2 processes × 1 (torchrun)"));

        var one = TrainingRuns.Train(Options("one") with { GradientAccumulationSteps = 2 });
        var launched = MetricsFile.ReadStepLosses(Dir.File("launched/metrics.jsonl"));
        var expected = MetricsFile.ReadStepLosses(one.MetricsPath);
        Assert.That(launched.Select(s => s.Step), Is.EqualTo(expected.Select(s => s.Step)));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.That(launched[i].Loss, Is.EqualTo(expected[i].Loss).Within(2e-4).Percent, $"step {expected[i].Step}");
        }
        string latest = CheckpointStore.ReadLatest(CheckpointStore.CheckpointsDirectory(Dir.File("launched")))!;
        var checkpoint = Checkpoint.Open(Path.Combine(CheckpointStore.CheckpointsDirectory(Dir.File("launched")), latest));
        Assert.That(checkpoint.Manifest.WorldSize, Is.EqualTo(2));
        Assert.That(checkpoint.Manifest.Shards.Select(s => s.Rank).Distinct(), Is.EquivalentTo(new[] { 0, 1 }), "each process wrote its own shards");
        Assert.DoesNotThrow(checkpoint.Verify);
        Assert.That(Directory.Exists(Dir.File("launched/adapter")), Is.True, "the first process writes the adapter");
    }

    [Test]
    public void A_rank_whose_master_never_comes_fails_with_a_message_naming_the_address()
    {
        string config = ConfigFile(Options("alone"));
        int port = RankThreads.FreePort();
        var alone = Launch(1, 2, port, "finetune", "--config", config, "--dist-timeout", "2");
        Assert.That(Finish(alone, "rank 1"), Is.Not.Zero);
        string output = alone.Output.ToString();
        Assert.That(output, Does.Contain($"127.0.0.1:{port}").And.Contain("MASTER_ADDR"));
        Assert.That(output, Does.Not.Contain("   at "), "a message, not a stack trace");
    }

    /// <summary>Both ranks of a long run, started; returns once the first steps are on record.</summary>
    private List<(Process Process, StringBuilder Output)> StartLongJob(string name, int port, params string[] more)
    {
        string config = ConfigFile(Options(name) with { NumEpochs = 1000, SaveEvery = 3 });
        var ranks = Enumerable.Range(0, 2).Select(r => Launch(r, 2, port, ["finetune", "--config", config, "--dist-timeout", "300", .. more])).ToList();
        CliProcess.WaitForSteps(Dir.File(name), after: 3);
        return ranks;
    }

    /// <summary>A survivor's exit: one line saying which rank is gone and how to resume, code 2, long before --dist-timeout.</summary>
    private static void AssertLostRankMessage((Process Process, StringBuilder Output) survivor, string outputDir)
    {
        Assert.That(Finish(survivor, "the surviving rank"), Is.EqualTo(CudaFinetune.Cli.Program.ExitUserError), survivor.Output.ToString());
        string error = survivor.Output.ToString().Split('\n').Single(line => line.StartsWith("error:", StringComparison.Ordinal));
        Assert.That(error, Does.Contain("the job cannot go on without every rank").And.Contain($"--resume '{Path.GetFullPath(outputDir)}'"));
        Assert.That(error, Does.Contain("rank "), "it names the rank");
        Assert.That(survivor.Output.ToString(), Does.Not.Contain("   at ").And.Not.Contain("Unhandled exception"));
    }

    /// <summary>Repetitions of the lost-rank tests; CUDAFINETUNE_RANK_KILLS asks for more (the long version in docs/reliability.md).</summary>
    private static int Repetitions => int.TryParse(Environment.GetEnvironmentVariable("CUDAFINETUNE_RANK_KILLS"), out int n) && n > 0 ? n : 1;

    [TestCase(0)]
    [TestCase(1)]
    public void When_one_rank_is_killed_the_other_exits_with_one_line_and_the_job_resumes(int killed)
    {
        for (int repetition = 0; repetition < Repetitions; repetition++)
        {
            KillOneRank(killed, $"killed-{killed}-{repetition}");
        }
        TestContext.Out.WriteLine($"rank {killed} killed {Repetitions} time(s): the other exited with one line each time and the job resumed");
    }

    private void KillOneRank(int killed, string name)
    {
        int port = RankThreads.FreePort();
        var ranks = StartLongJob(name, port);
        ranks[killed].Process.Kill();
        ranks[killed].Process.WaitForExit();
        ranks[killed].Process.Dispose();
        AssertLostRankMessage(ranks[1 - killed], Dir.File(name));

        // Nothing saved was lost: the whole job resumes from the newest checkpoint and goes on.
        var listed = CheckpointStore.List(Dir.File(name));
        Assert.That(listed.Where(c => c.OnChain).Select(c => c.Problem), Is.All.Null, "every checkpoint on record verifies");
        // A kill between a checkpoint's commit and the move of checkpoints/latest leaves that newest checkpoint off the
        // run's record: the resume continues from the checkpoint latest names (the steps after it run again, bit for bit)
        // and keeps the other, moved to branches/.
        long saved = listed.Where(c => c.OnChain).Max(c => c.Step);
        var unrecorded = listed.Where(c => !c.OnChain).Select(c => c.Name).ToList();
        int resumePort = RankThreads.FreePort();
        var resumed = Enumerable.Range(0, 2).Select(r => Launch(r, 2, resumePort, "finetune", "--resume", Dir.File(name), "--max-steps", (saved + 2).ToString(CultureInfo.InvariantCulture),
            "--dist-timeout", "120")).ToList();
        for (int r = 0; r < 2; r++)
        {
            Assert.That(Finish(resumed[r], $"resumed rank {r}"), Is.Zero, resumed[r].Output.ToString());
        }
        Assert.That(resumed[0].Output.ToString(), Does.Contain($"resuming from").And.Contain($"(step {saved},"));
        string[] kept = Directory.Exists(Path.Combine(Dir.File(name), "branches"))
            ? [.. Directory.GetDirectories(Path.Combine(Dir.File(name), "branches"), "step-*", SearchOption.AllDirectories).Select(Path.GetFileName).OfType<string>()]
            : [];
        Assert.That(unrecorded, Is.SubsetOf(kept), "a checkpoint off the record is kept in branches/");
    }

    [Test]
    public void A_rank_that_cannot_start_stops_the_other_at_once()
    {
        for (int repetition = 0; repetition < Repetitions; repetition++)
        {
            StartWithTheFirstBlocked($"blocked-{repetition}");
        }
        TestContext.Out.WriteLine($"{Repetitions} start(s) with the first process refused: the other stopped with one line each time");
    }

    private void StartWithTheFirstBlocked(string name)
    {
        // The first process cannot claim its output directory (a run of this test holds it); the second must not wait
        // the whole --dist-timeout for it.
        string config = ConfigFile(Options(name));
        string outputDir = Dir.File(name);
        using var held = CudaFinetune.IO.RunLock.Acquire(outputDir);
        int port = RankThreads.FreePort();
        var ranks = Enumerable.Range(0, 2).Select(r => Launch(r, 2, port, "finetune", "--config", config, "--dist-timeout", "300")).ToList();
        var clock = Stopwatch.StartNew();
        Assert.That(Finish(ranks[0], "rank 0"), Is.EqualTo(CudaFinetune.Cli.Program.ExitUserError), ranks[0].Output.ToString());
        Assert.That(ranks[0].Output.ToString(), Does.Contain("is in use by"));
        Assert.That(Finish(ranks[1], "rank 1"), Is.EqualTo(CudaFinetune.Cli.Program.ExitUserError), ranks[1].Output.ToString());
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(240)), "stopped by the first process's failure, not by --dist-timeout 300");
        string error = ranks[1].Output.ToString().Split('\n').Single(line => line.StartsWith("error:", StringComparison.Ordinal));
        Assert.That(error, Does.Contain("before training began: another process of the job could not start"));
        Assert.That(ranks[1].Output.ToString(), Does.Not.Contain("   at "));
    }
}
