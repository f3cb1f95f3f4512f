using CudaFinetune.Errors;
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
            Assert.That(e!.Message, Does.Contain($"in use by process {Environment.ProcessId}").And.Contain(RunLock.FileName));
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
}
