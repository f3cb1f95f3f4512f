using System.Globalization;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Hosting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Training;

/// <summary>
/// A long run — many epochs, a checkpoint every few steps with retention, evaluations — holds its memory, file handles and
/// threads flat: whatever one epoch takes, the next gives back. CI runs a short soak (<see cref="DefaultEpochs"/> epochs);
/// <c>CUDAFINETUNE_SOAK_EPOCHS=2000 dotnet test --filter Category=Soak</c> runs a long one. Each epoch's figures are printed.
/// </summary>
[TestFixture]
[Category("Soak")]
public sealed class SoakTests : LearnableTaskFixture
{
    private const int DefaultEpochs = 40;

    private static int Epochs => int.TryParse(Environment.GetEnvironmentVariable("CUDAFINETUNE_SOAK_EPOCHS"), CultureInfo.InvariantCulture, out int n) && n >= 10 ? n : DefaultEpochs;

    private sealed record Sample(int Epoch, long Step, long ResidentBytes, long ManagedBytes, long GcCommittedBytes, int OpenFiles, int Threads)
    {
        /// <summary>Resident memory outside the garbage-collected heap: native tensors, scratch, the runtime itself.</summary>
        public long NativeBytes => ResidentBytes - GcCommittedBytes;
    }

    private static Sample Measure(int epoch, long step)
    {
        // A full collection first, so the managed figure is what the run still holds, not garbage not yet collected.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        return new Sample(epoch, step, self.WorkingSet64, GC.GetTotalMemory(forceFullCollection: false), GC.GetGCMemoryInfo().TotalCommittedBytes,
            Directory.GetFiles("/proc/self/fd").Length, self.Threads.Count);
    }

    [Test]
    public void Many_epochs_with_saves_and_evaluations_hold_memory_handles_and_threads_flat()
    {
        if (!Directory.Exists("/proc/self/fd"))
        {
            Assert.Ignore("open files are counted through /proc/self/fd (Linux)");
        }
        int epochs = Epochs;
        var options = LearnableTask.Options(ModelDir, DataFile, Dir.File("soak")) with
        {
            NumEpochs = epochs,
            SaveEvery = 3,
            KeepLast = 2,
            EvalEvery = 4,
            Scheduler = SchedulerKind.Cosine,
            GradientClipping = 1.0,
        };
        var samples = new List<Sample>();
        using (var session = FinetuneSession.Open(options))
        {
            session.Progress += e =>
            {
                if (e is EpochCompleted done)
                {
                    samples.Add(Measure(done.Epoch, done.Step));
                }
            };
            var result = session.Train();
            Assert.That(result.Outcome.EpochsCompleted, Is.EqualTo(epochs));
        }
        foreach (var s in samples)
        {
            TestContext.Out.WriteLine($"epoch {s.Epoch,5}  step {s.Step,6}  rss {s.ResidentBytes / 1048576.0,7:F1} MiB  managed {s.ManagedBytes / 1048576.0,6:F2} MiB  gc-committed {s.GcCommittedBytes / 1048576.0,6:F1} MiB  native {s.NativeBytes / 1048576.0,6:F1} MiB  files {s.OpenFiles,3}  threads {s.Threads,3}");
        }

        // After a warm-up (JIT tiers, pools and scratch sized, the first checkpoints in place) nothing may keep growing.
        var warm = samples[epochs / 4];
        var late = samples.Skip(epochs / 4).ToList();
        var last = samples[^1];
        Assert.That(late.Max(s => s.ManagedBytes), Is.LessThan(warm.ManagedBytes + (4 << 20)), "managed memory the run still holds");
        Assert.That(late.Max(s => s.OpenFiles), Is.LessThanOrEqualTo(warm.OpenFiles + 4), "open files (a save in flight holds a few; a leaked handle per save would grow without bound)");
        Assert.That(late.Max(s => s.Threads), Is.LessThanOrEqualTo(warm.Threads + 4), "threads (a leaked writer per save would grow this)");
        Assert.That(last.NativeBytes, Is.LessThan(warm.NativeBytes + (16 << 20)), "memory outside the managed heap (tensors, scratch, checkpoint images, allocator)");
        Assert.That(last.ResidentBytes, Is.LessThan(warm.ResidentBytes + (48 << 20)), "resident memory at the end against after the warm-up");
        Assert.That(CheckpointStore.List(options.OutputDir).Count, Is.LessThanOrEqualTo(options.KeepLast + 1), "retention kept the checkpoint count bounded");
    }
}
