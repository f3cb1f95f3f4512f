using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.IO;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.IO;

/// <summary>One run per output directory: a second is refused while the first lives; a lock left by a dead process is taken over.</summary>
[TestFixture]
public sealed class RunLockTests : LearnableTaskFixture
{
    private FinetuneOptions Options(string name) => LearnableTask.Options(ModelDir, DataFile, Dir.File(name)) with { MaxSteps = 1 };

    private static void WriteLock(string outputDir, int pid, DateTime processStarted)
    {
        Directory.CreateDirectory(outputDir);
        File.WriteAllText(Path.Combine(outputDir, RunLock.FileName),
            $$"""{"pid": {{pid}}, "host": "{{Environment.MachineName}}", "process_started_utc": "{{processStarted:O}}", "acquired_utc": "2026-12-01T00:00:00Z"}""");
    }

    [Test]
    public void A_second_run_on_a_directory_in_use_is_refused_naming_the_owner()
    {
        using (RunLock.Acquire(Dir.File("busy")))
        {
            var e = Assert.Throws<UserErrorException>(() => TrainingRuns.Train(Options("busy")));
            Assert.That(e!.Message, Does.Contain($"in use by process {Environment.ProcessId} on {Environment.MachineName}"));
        }
        var result = TrainingRuns.Train(Options("busy"));
        Assert.That(result.Outcome.Steps, Is.EqualTo(1), "free again once released");
        Assert.That(File.Exists(Path.Combine(result.OutputDir, RunLock.FileName)), Is.False, "a finished run leaves no lock");
    }

    [Test]
    [NonParallelizable] // a second process on two cores
    public void A_second_process_started_on_the_same_directory_refuses_while_the_first_trains_on()
    {
        string dir = Dir.File("shared");
        string[] args = ["finetune", "--model", ModelDir, "--dataset", DataFile, "--output-dir", dir, "--context-length", "16", "--batch-size", "4",
            "--num-epochs", "1000", "--device", "cpu"];
        var firstLog = new System.Text.StringBuilder();
        using var first = CliProcess.Start(firstLog, args);
        try
        {
            CliProcess.WaitForSteps(dir);
            var secondLog = new System.Text.StringBuilder();
            // --overwrite, the dangerous case: without the lock it would delete the first run's checkpoints under it.
            using var second = CliProcess.Start(secondLog, [.. args, "--overwrite"]);
            Assert.That(second.WaitForExit(TimeSpan.FromMinutes(1)), Is.True);
            second.WaitForExit();
            Assert.That(second.ExitCode, Is.EqualTo(CudaFinetune.Cli.Program.ExitUserError), secondLog.ToString());
            Assert.That(secondLog.ToString(), Does.Contain($"in use by process {first.Id}"));
            Assert.That(first.HasExited, Is.False, "the first run trains on");
        }
        finally
        {
            first.Kill();
            first.WaitForExit();
        }
        Assert.That(TrainingRuns.Train(Options("shared") with { Overwrite = true }).Outcome.Steps, Is.EqualTo(1), "the killed owner's lock is taken over");
    }

    [Test]
    public void A_lock_whose_process_is_gone_or_whose_pid_was_reused_is_taken_over()
    {
        WriteLock(Dir.File("dead"), pid: int.MaxValue - 7, DateTime.UtcNow);
        Assert.That(TrainingRuns.Train(Options("dead")).Outcome.Steps, Is.EqualTo(1));

        WriteLock(Dir.File("reused"), Environment.ProcessId, new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        Assert.That(TrainingRuns.Train(Options("reused")).Outcome.Steps, Is.EqualTo(1), "our pid, but a process started long before ours held it");
    }

    /// <summary>Rounds of the process race; CUDAFINETUNE_LOCK_RACES asks for more (the long version in docs/reliability.md).</summary>
    private static int ProcessRounds => int.TryParse(Environment.GetEnvironmentVariable("CUDAFINETUNE_LOCK_RACES"), out int n) && n > 0 ? n : 1;

    [Test]
    public void Of_threads_racing_for_a_directory_exactly_one_holds_it_each_round()
    {
        const int threads = 8;
        const int rounds = 300;
        string dir = Dir.File("raced");
        var winners = new int[rounds];
        using var start = new Barrier(threads);
        using var tried = new Barrier(threads);
        var racers = Enumerable.Range(0, threads).Select(_ => new Thread(() =>
        {
            for (int round = 0; round < rounds; round++)
            {
                start.SignalAndWait();
                RunLock? held = null;
                try
                {
                    held = RunLock.Acquire(dir);
                    Interlocked.Increment(ref winners[round]);
                }
                catch (UserErrorException e) when (e.Message.Contains("is in use by", StringComparison.Ordinal))
                {
                }
                tried.SignalAndWait(); // the winner holds the lock until every racer has tried
                held?.Dispose();
            }
        })).ToList();
        racers.ForEach(t => t.Start());
        racers.ForEach(t => t.Join());
        TestContext.Out.WriteLine($"{rounds} rounds of {threads} threads: {winners.Count(w => w == 1)} with exactly one holder");
        Assert.That(winners, Is.All.EqualTo(1), "each round exactly one racer holds the directory");
        Assert.That(File.Exists(Path.Combine(dir, RunLock.FileName)), Is.False, "released, the lock file is gone");
    }

    [Test]
    [NonParallelizable] // several processes on two cores
    public void Of_processes_started_together_on_one_directory_exactly_one_trains()
    {
        const int processes = 4;
        int rounds = ProcessRounds;
        for (int round = 0; round < rounds; round++)
        {
            string dir = Dir.File($"together-{round}");
            string[] args = ["finetune", "--model", ModelDir, "--dataset", DataFile, "--output-dir", dir, "--context-length", "16", "--batch-size", "4",
                "--max-steps", "3", "--save-every", "1", "--device", "cpu"];
            var logs = Enumerable.Range(0, processes).Select(_ => new System.Text.StringBuilder()).ToList();
            var started = logs.Select(log => CliProcess.Start(log, args)).ToList();
            var codes = new List<int>();
            foreach (var process in started)
            {
                using (process)
                {
                    Assert.That(process.WaitForExit(TimeSpan.FromMinutes(3)), Is.True, "a racer hangs");
                    process.WaitForExit();
                    codes.Add(process.ExitCode);
                }
            }
            string all = string.Join("\n---\n", logs);
            Assert.That(codes.Count(c => c == 0), Is.EqualTo(1), $"exactly one trains:\n{all}");
            for (int i = 0; i < processes; i++)
            {
                if (codes[i] != 0)
                {
                    // In use while the winner trains, or (started after it finished) an earlier run that --overwrite would replace.
                    Assert.That(codes[i], Is.EqualTo(CudaFinetune.Cli.Program.ExitUserError), logs[i].ToString());
                    Assert.That(logs[i].ToString(), Does.Contain("is in use by").Or.Contain("already holds a run"));
                    Assert.That(logs[i].ToString(), Does.Not.Contain("   at "), "a message, not a stack trace");
                }
            }
            var listed = CudaFinetune.Checkpoints.CheckpointStore.List(dir);
            Assert.That(listed.Select(c => c.Problem), Is.All.Null, "every checkpoint verifies");
            Assert.That(listed.Select(c => c.Step), Is.EquivalentTo(new long[] { 1, 2, 3 }));
            foreach (string line in File.ReadLines(Path.Combine(dir, RunFileNames.MetricsFileName)))
            {
                Assert.DoesNotThrow(() => System.Text.Json.JsonDocument.Parse(line).Dispose(), $"metrics.jsonl holds one writer's lines: {line}");
            }
        }
        TestContext.Out.WriteLine($"{rounds} round(s) of {processes} processes started together: one trained each time");
    }

    [Test]
    public void A_resume_of_a_directory_a_run_holds_is_refused_before_reading_it()
    {
        var done = TrainingRuns.Train(Options("live") with { SaveEvery = 1 });
        using (RunLock.Acquire(done.OutputDir))
        {
            var e = Assert.Throws<UserErrorException>(() => FinetuneSession.ReadResumeOptions(done.OutputDir));
            Assert.That(e!.Message, Does.StartWith($"cannot resume from '{done.OutputDir}': process {Environment.ProcessId}").And.Contain("is training there"));
            string checkpoint = Path.Combine(done.OutputDir, "checkpoints", "step-00000001");
            Assert.Throws<UserErrorException>(() => FinetuneSession.ReadResumeOptions(checkpoint), "one of its checkpoints too");
        }
        Assert.That(FinetuneSession.ReadResumeOptions(done.OutputDir).OutputDir, Is.EqualTo(done.OutputDir), "free once released");
    }

    [Test]
    [Platform("Linux")] // O_NOFOLLOW
    public void A_lock_file_planted_as_a_link_is_not_followed()
    {
        string dir = Dir.File("planted-lock");
        Directory.CreateDirectory(dir);
        string target = Dir.File("elsewhere.txt");
        File.WriteAllText(target, "keep me");
        File.CreateSymbolicLink(Path.Combine(dir, RunLock.FileName), target);
        var e = Assert.Throws<UserErrorException>(() => RunLock.Acquire(dir).Dispose());
        Assert.That(e!.Message, Does.StartWith($"cannot claim --output-dir '{dir}'"));
        Assert.That(File.ReadAllText(target), Is.EqualTo("keep me"));
    }
}
