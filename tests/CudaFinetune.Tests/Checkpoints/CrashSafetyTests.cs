using System.Diagnostics;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Hosting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Checkpoints;

/// <summary>
/// The CudaFinetune executable, saving a checkpoint after every step, is killed with SIGKILL at
/// random instants (inside steps, background writes, renames); after every kill each committed
/// checkpoint verifies and <c>latest</c> names one of them, and the run resumed from whatever was
/// left finishes with the same metrics and adapter as a run that was never killed.
/// </summary>
[TestFixture]
public sealed class CrashSafetyTests : TempDirectoryFixture
{
    private static Process Start(params string[] args) => CliProcess.Start(new System.Text.StringBuilder(), args);

    private static Process Start(System.Text.StringBuilder output, params string[] args) => CliProcess.Start(output, args);

    /// <summary>SIGKILLs per run: 6 in CI; <c>CUDAFINETUNE_KILLS=200</c> for a long hunt (docs/reliability.md reports one).</summary>
    private static int Kills => int.TryParse(Environment.GetEnvironmentVariable("CUDAFINETUNE_KILLS"), System.Globalization.CultureInfo.InvariantCulture, out int n) && n > 0 ? n : 6;

    [Test]
    public void Killed_at_random_instants_it_never_leaves_an_invalid_checkpoint_and_resumes_to_the_same_result()
    {
        var (model, data) = LearnableTask.Write(Dir.Path);
        string output = Dir.File("killed");
        int lives = Kills;
        // Long enough that the short lives cannot finish it, so every attempt is really killed.
        int maxSteps = Math.Max(600, 100 * lives);
        string[] plan = ["--num-epochs", "1000", "--max-steps", maxSteps.ToString(System.Globalization.CultureInfo.InvariantCulture), "--save-every", "1", "--keep-last", "2", "--eval-every", "5"];
        string[] first = ["finetune", "--model", model, "--dataset", data, "--output-dir", output, "--context-length", "16", "--batch-size", "4",
            "--lora-targets", "all-linear", "--lr", "0.01", "--seed", "7", "--device", "cpu", .. plan];
        var rng = new Random(11);
        int kills = 0;
        for (int attempt = 0; attempt < lives; attempt++)
        {
            string checkpoints = CheckpointStore.CheckpointsDirectory(output);
            bool resume = CheckpointStore.Directories(checkpoints).Count > 0;
            long from = resume ? Checkpoint.Open(Path.Combine(checkpoints, CheckpointStore.ReadLatest(checkpoints)!)).Manifest.Training.Step : 0;
            using var process = Start(resume ? ["finetune", "--resume", output] : first);
            // Once it is training (a few steps past where it started, however slow the machine), at a random instant.
            CliProcess.WaitForSteps(output, after: from);
            Thread.Sleep(TimeSpan.FromMilliseconds(rng.Next(0, 400)));
            if (!process.HasExited)
            {
                process.Kill(); // SIGKILL
                kills++;
            }
            process.WaitForExit();
            AssertEveryCommittedCheckpointIsValid(output);
        }
        using (var final = Start(["finetune", "--resume", output]))
        {
            Assert.That(final.WaitForExit(TimeSpan.FromMinutes(3 + lives / 10)), Is.True, "the resumed run finishes");
            Assert.That(final.ExitCode, Is.Zero);
        }
        TestContext.Out.WriteLine($"{kills} kills survived");
        Assert.That(kills, Is.EqualTo(lives), "every attempt was killed mid-run");

        // The same run, never killed, in this process (same runtime and CPU, so the same arithmetic).
        var options = new FinetuneOptions
        {
            Model = model, Dataset = data, OutputDir = Dir.File("reference"), ContextLength = 16, BatchSize = 4, LoraTargets = "all-linear",
            Lr = 0.01, Seed = 7, Device = "cpu", NumEpochs = 1000, MaxSteps = maxSteps, SaveEvery = 1, KeepLast = 2, EvalEvery = 5,
        };
        using (var session = FinetuneSession.Open(options))
        {
            session.Train();
        }
        Assert.That(DeterministicMetrics.Read(output), Is.EqualTo(DeterministicMetrics.Read(Dir.File("reference"))));
        Assert.That(File.ReadAllBytes(Path.Combine(output, "adapter", "adapter_model.safetensors")),
            Is.EqualTo(File.ReadAllBytes(Path.Combine(Dir.File("reference"), "adapter", "adapter_model.safetensors"))));
    }

    private static void Signal(Process process, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
    }

    [Test]
    public void Sigterm_finishes_the_step_writes_a_checkpoint_prints_the_resume_command_and_exits_0_and_a_second_signal_aborts()
    {
        Assume.That(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), "POSIX signals");
        var (model, data) = LearnableTask.Write(Dir.Path);
        string[] args = ["finetune", "--model", model, "--dataset", data, "--output-dir", Dir.File("run"), "--context-length", "16",
            "--batch-size", "4", "--num-epochs", "200", "--device", "cpu"];
        var log = new System.Text.StringBuilder();
        using (var process = Start(log, args))
        {
            CliProcess.WaitForSteps(Dir.File("run"));
            Signal(process, "TERM");
            Assert.That(process.WaitForExit(TimeSpan.FromMinutes(1)), Is.True);
            Assert.That(process.ExitCode, Is.Zero, log.ToString());
        }
        Assert.That(log.ToString(), Does.Contain("SIGTERM: stopping after the current step").And.Contain("resume with: CudaFinetune finetune --resume"));
        string checkpoints = CheckpointStore.CheckpointsDirectory(Dir.File("run"));
        var interrupted = Checkpoint.Open(Path.Combine(checkpoints, CheckpointStore.ReadLatest(checkpoints)!));
        Assert.That(interrupted.Manifest.Reason, Is.EqualTo(CheckpointReason.Interrupted));
        interrupted.Verify();

        // Resumed, then two signals in a row: the second ends the process at once; what was committed stays valid.
        using (var again = Start(["finetune", "--resume", Dir.File("run")]))
        {
            CliProcess.WaitForSteps(Dir.File("run"), after: interrupted.Manifest.Training.Step);
            Signal(again, "TERM");
            Signal(again, "TERM");
            Assert.That(again.WaitForExit(TimeSpan.FromMinutes(1)), Is.True);
        }
        AssertEveryCommittedCheckpointIsValid(Dir.File("run"));
        Assert.That(CheckpointStore.Directories(checkpoints), Is.Not.Empty);
    }

    private static void AssertEveryCommittedCheckpointIsValid(string output)
    {
        string checkpoints = CheckpointStore.CheckpointsDirectory(output);
        foreach (string dir in CheckpointStore.Directories(checkpoints))
        {
            Assert.DoesNotThrow(() => Checkpoint.Open(dir).Verify(), dir);
        }
        if (CheckpointStore.ReadLatest(checkpoints) is { } latest)
        {
            Assert.That(Directory.Exists(Path.Combine(checkpoints, latest)), Is.True, $"latest names {latest}");
        }
    }
}
