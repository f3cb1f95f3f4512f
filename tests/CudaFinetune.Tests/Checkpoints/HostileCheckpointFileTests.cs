using System.Text;
using CudaFinetune.Checkpoints;
using CudaFinetune.Cli;
using CudaFinetune.Config;
using CudaFinetune.Hosting;
using CudaFinetune.IO;
using CudaFinetune.Reporting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Checkpoints;

/// <summary>
/// A checkpoint whose manifest, a shard or metrics.jsonl was replaced by a symbolic link (to /dev/zero, /dev/null, a file
/// outside, even a good copy of itself), a FIFO or a directory, or whose metrics are damaged under a resealed manifest, is
/// refused by name as a <see cref="CheckpointCorruptException"/>: never read through, waited on or run out of memory on.
/// <c>checkpoint verify</c> says so in one line and exits 1, and a resume falls back to the previous checkpoint.
/// </summary>
[TestFixture]
[Platform("Linux")] // FIFOs come from mkfifo; links to Linux's devices
public sealed class HostileCheckpointFileTests : LearnableTaskFixture
{
    private static readonly string[] Entries = ["manifest.json", "model/rank-00000.bin", "metrics.jsonl"];

    private static string Description(Hostile kind) => RegularFiles.Describe(HostileFiles.KindOf(kind));

    [Test]
    [Combinatorial]
    public void A_link_FIFO_or_directory_in_place_of_a_file_is_refused_by_name_and_verify_exits_1_in_one_line(
        [ValueSource(nameof(Entries))] string entry, [Values] Hostile kind)
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 5);
        HostileFiles.Plant(Path.Combine(checkpoint, entry), kind, Dir.File("outside"));

        var e = Assert.Throws<CheckpointCorruptException>(() => Checkpoint.Open(checkpoint).Verify())!;
        Assert.That(e.File, Is.EqualTo(entry));
        Assert.That(e.Problem, Does.StartWith($"is {Description(kind)}"));

        var verify = CliRuns.Run(["checkpoint", "verify", checkpoint]);
        Assert.That(verify.Code, Is.EqualTo(Program.ExitCheckFailed), verify.Out + verify.Err);
        Assert.That(verify.Err, Is.Empty);
        Assert.That(verify.Out.TrimEnd().Split('\n'), Has.Length.EqualTo(1));
        Assert.That(verify.Out, Does.StartWith($"invalid: checkpoint '{checkpoint}' is not valid: {entry}: is {Description(kind)}"));
    }

    [Test]
    public void A_link_to_the_checkpoint_directory_or_above_it_is_refused_without_being_followed()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 5);
        File.CreateSymbolicLink(Path.Combine(checkpoint, "model", "loop"), Dir.Path); // followed, the walk would never end
        var e = Assert.Throws<CheckpointCorruptException>(() => Checkpoint.Open(checkpoint))!;
        Assert.That(e.File, Is.EqualTo("model/loop"));
        Assert.That(e.Problem, Does.StartWith("is a symbolic link"));

        string linked = Dir.File("linked-step");
        Directory.CreateSymbolicLink(linked, checkpoint);
        Assert.That(Assert.Throws<CheckpointCorruptException>(() => Checkpoint.Open(linked))!.Problem, Does.StartWith("is a symbolic link, not a directory"));
    }

    [Test]
    public void A_dangling_link_in_a_checkpoint_is_listed_as_invalid_not_left_out()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 5);
        File.CreateSymbolicLink(Path.Combine(checkpoint, "model", "extra.bin"), Dir.File("nowhere"));
        var list = CliRuns.Run(["checkpoint", "list", Dir.File("out")]);
        Assert.That(list.Code, Is.EqualTo(Program.ExitCheckFailed), list.Out + list.Err);
        Assert.That(list.Out, Does.Contain("step-00000005").And.Contain("INVALID").And.Contain("model/extra.bin: is a symbolic link"));
    }

    [Test]
    public void A_FIFO_or_link_in_place_of_latest_is_reported_and_the_newest_checkpoint_taken_instead([Values(Hostile.Fifo, Hostile.LinkOutside)] Hostile kind)
    {
        TestCheckpoints.Write(Dir.File("out"), step: 5);
        string checkpoints = CheckpointStore.CheckpointsDirectory(Dir.File("out"));
        HostileFiles.Plant(Path.Combine(checkpoints, CheckpointFormat.LatestFileName), kind, Dir.File("outside"));

        var history = RunHistory.Read(checkpoints);
        Assert.That(history.LatestProblem, Does.Contain("latest is empty or not a regular file").And.Contain("taking step-00000005"));
        Assert.That(history.Head!.Name, Is.EqualTo("step-00000005"));
    }

    /// <summary>Run as a process of its own, so that a blocking open of the FIFO (which no one writes) fails the test instead of hanging the run.</summary>
    [Test]
    public void Verify_of_a_checkpoint_whose_manifest_is_a_FIFO_exits_1_instead_of_waiting()
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 5);
        HostileFiles.Plant(Path.Combine(checkpoint, "manifest.json"), Hostile.Fifo, Dir.File("outside"));
        var output = new StringBuilder();
        using var process = CliProcess.Start(output, ["checkpoint", "verify", checkpoint]);
        bool exited = process.WaitForExit(TimeSpan.FromMinutes(5)); // a bound on a hang, far above the second or two it takes
        if (!exited)
        {
            process.Kill();
        }
        Assert.That(exited, Is.True, "verify waited on the FIFO");
        process.WaitForExit();
        Assert.That(process.ExitCode, Is.EqualTo(Program.ExitCheckFailed), output.ToString());
        Assert.That(output.ToString(), Does.Contain("manifest.json: is a FIFO"));
    }

    [TestCase("{\"step\":1,\"loss\":2.5}{\"step\":2,\"loss\":2.25}\n", 1, TestName = "Two writers' lines run together")]
    [TestCase("{\"step\":1,\"loss\":2.5}\n{\"step\":2,\"lo", 2, TestName = "A line cut short")]
    [TestCase("{\"step\":1,\"loss\":2.5}\nroot:x:0:0:root:/root:/bin/bash\n", 2, TestName = "A line that is not JSON")]
    [TestCase("{\"loss\":2.5}\n", 1, TestName = "A line without a step")]
    [TestCase("{\"step\":1.5,\"loss\":2.5}\n", 1, TestName = "A step that is not an integer")]
    [TestCase("{\"step\":1,\"loss\":\"2.5\"}\n", 1, TestName = "A loss that is a string")]
    [TestCase("{\"step\":1,\"step\":2}\n", 1, TestName = "A step given twice")]
    [TestCase("[1, 2]\n", 1, TestName = "A line that is not an object")]
    public void Damaged_metrics_under_a_resealed_manifest_make_the_checkpoint_invalid(string content, int line)
    {
        string checkpoint = TestCheckpoints.Write(Dir.File("out"), step: 5);
        byte[] bytes = Encoding.UTF8.GetBytes(content);
        File.WriteAllBytes(Path.Combine(checkpoint, CheckpointFormat.MetricsFileName), bytes);
        CheckpointDamage.ResealFile(checkpoint, CheckpointFormat.MetricsFileName, bytes);

        var opened = Checkpoint.Open(checkpoint); // lengths and the manifest agree: only the content is wrong
        var e = Assert.Throws<CheckpointCorruptException>(opened.Verify)!;
        Assert.That(e.File, Is.EqualTo(CheckpointFormat.MetricsFileName));
        Assert.That(e.Problem, Does.StartWith($"line {line} "));
        Assert.That(Assert.Throws<CheckpointCorruptException>(() => opened.ReadFile(CheckpointFormat.MetricsFileName))!.Problem, Is.EqualTo(e.Problem));
    }

    [Test]
    public void Metrics_the_writer_writes_pass_the_content_check()
    {
        string path = Dir.File("metrics.jsonl");
        using (var writer = new MetricsWriter(path))
        {
            writer.Write(new StepCompleted(1, 9, 0, 2.5, 1e-3, 0.5, 100, TimeSpan.Zero));
            writer.Write(new StepCompleted(2, 9, 0, double.NaN, 1e-3, double.PositiveInfinity, 100, TimeSpan.Zero, Skipped: true, SkippedSteps: 1));
            writer.Write(new EvaluationCompleted(2, 0, 2.25, Math.Exp(2.25), 64));
        }
        Assert.That(CheckpointFormat.CheckContent(CheckpointFormat.MetricsFileName, File.ReadAllBytes(path)), Is.Null);
        Assert.That(CheckpointFormat.CheckContent(CheckpointFormat.MetricsFileName, []), Is.Null);
        Assert.That(CheckpointFormat.CheckContent(CheckpointFormat.ModelConfigFileName, "not json"u8), Is.Null, "only files the engine parses are checked");
    }

    [Test]
    public void A_linked_or_special_file_is_never_copied_into_a_checkpoint()
    {
        string metrics = Dir.File("elsewhere/metrics.jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(metrics)!);
        File.WriteAllText(metrics, "{\"step\":1,\"loss\":2.5}\n");
        string link = Dir.File("link.jsonl");
        File.CreateSymbolicLink(link, metrics);
        string fifo = Dir.File("fifo.jsonl");
        HostileFiles.MakeFifo(fifo);
        string linkToFifo = Dir.File("link-to-fifo.jsonl");
        File.CreateSymbolicLink(linkToFifo, fifo);
        string output = Dir.File("out");

        foreach (var (source, follow, kind) in new[] { (link, false, FileKind.SymbolicLink), (fifo, false, FileKind.Fifo), (linkToFifo, true, FileKind.Fifo) })
        {
            var refused = new CheckpointExtraFile(CheckpointFormat.MetricsFileName, source, 22, FollowLinks: follow);
            var e = Assert.Throws<NotARegularFileException>(() => TestCheckpoints.Write(output, step: 3, metrics: refused))!;
            Assert.That(e.Kind, Is.EqualTo(kind), source);
        }
        string checkpoints = CheckpointStore.CheckpointsDirectory(output);
        Assert.That(Directory.EnumerateFileSystemEntries(checkpoints).Where(p => !p.EndsWith("latest", StringComparison.Ordinal)), Is.Empty, "nothing committed, no temporary left");

        // A link the caller allows (the model's config.json in Hugging Face's cache links to a blob) is copied as its content.
        string copied = TestCheckpoints.Write(output, step: 3, metrics: new CheckpointExtraFile(CheckpointFormat.MetricsFileName, link, 22, FollowLinks: true));
        Assert.That(RegularFiles.KindOf(Path.Combine(copied, CheckpointFormat.MetricsFileName)), Is.EqualTo(FileKind.Regular));
        Assert.DoesNotThrow(Checkpoint.Open(copied).Verify);
    }

    private FinetuneOptions Options(string name, int maxSteps) => LearnableTask.Options(ModelDir, DataFile, Dir.File(name)) with
    {
        MaxSteps = maxSteps,
        SaveEvery = 3,
        KeepLast = 0,
    };

    /// <summary>A run with checkpoints at steps 3, 6 and 9; the newest one's directory.</summary>
    private string TrainToStep9(string name)
    {
        TrainingRuns.Train(Options(name, 9));
        string newest = CheckpointStore.Directories(CheckpointStore.CheckpointsDirectory(Dir.File(name)))[0];
        Assert.That(Path.GetFileName(newest), Is.EqualTo("step-00000009"));
        return newest;
    }

    [Test]
    public void Resume_falls_back_past_a_newest_checkpoint_with_any_hostile_entry_or_damaged_metrics()
    {
        TrainToStep9("pristine");
        var cases = Entries.SelectMany(entry => Enum.GetValues<Hostile>().Select(kind => (entry, kind: (Hostile?)kind)))
            .Append((CheckpointFormat.MetricsFileName, null)) // damaged metrics under a resealed manifest
            .ToList();
        int n = 0;
        foreach (var (entry, kind) in cases)
        {
            string run = $"run-{n++}";
            DirectoryTrees.Copy(Dir.File("pristine"), Dir.File(run));
            string newest = Path.Combine(CheckpointStore.CheckpointsDirectory(Dir.File(run)), "step-00000009");
            string path = Path.Combine(newest, entry);
            if (kind is { } hostile)
            {
                HostileFiles.Plant(path, hostile, Dir.File($"outside-{run}"));
            }
            else
            {
                byte[] interleaved = Encoding.UTF8.GetBytes("{\"step\":1,\"loss\":2.5}{\"step\":2,\"loss\":2.25}\n");
                File.WriteAllBytes(path, interleaved);
                CheckpointDamage.ResealFile(newest, entry, interleaved);
            }

            using var session = FinetuneSession.Open(Options(run, 12), new ResumeRequest(Dir.File(run)));
            string what = $"{entry} as {kind?.ToString() ?? "damaged metrics"}";
            Assert.That(session.Resumed!.Step, Is.EqualTo(6), what);
            Assert.That(session.Resumed.Skipped, Has.Count.EqualTo(1), what);
            Assert.That(session.Resumed.Skipped[0], Does.Contain("step-00000009").And.Contain(entry), what);
        }
        TestContext.Out.WriteLine($"{cases.Count} hostile newest checkpoints passed over by resume");
    }

    [Test]
    public void A_resumed_run_never_copies_a_linked_files_content_from_outside_into_the_output_directory()
    {
        string newest = TrainToStep9("run");
        // Valid metrics lines, so that only the refusal of links keeps them out: the content check alone would pass them.
        byte[] secret = Encoding.UTF8.GetBytes($"{{\"step\":1,\"loss\":0.5,\"passwd\":\"{HostileFiles.OutsideSecret.TrimEnd()}\"}}\n");
        string outside = Dir.File("etc/passwd");
        Directory.CreateDirectory(Path.GetDirectoryName(outside)!);
        File.WriteAllBytes(outside, secret);
        string metrics = Path.Combine(newest, CheckpointFormat.MetricsFileName);
        File.Delete(metrics);
        File.CreateSymbolicLink(metrics, outside);
        CheckpointDamage.ResealFile(newest, CheckpointFormat.MetricsFileName, secret);
        Assert.That(CheckpointFormat.CheckContent(CheckpointFormat.MetricsFileName, secret), Is.Null);

        using (var session = FinetuneSession.Open(Options("run", 12), new ResumeRequest(Dir.File("run"))))
        {
            Assert.That(session.Resumed!.Step, Is.EqualTo(6));
            var result = session.Train();
            Assert.That(MetricsFile.ReadStepLosses(result.MetricsPath).Select(s => s.Step), Is.EqualTo(Enumerable.Range(1, 12).Select(i => (long)i)));
        }
        var leaked = Directory.EnumerateFiles(Dir.File("run"), "*", SearchOption.AllDirectories)
            .Where(f => RegularFiles.KindOf(f) == FileKind.Regular && File.ReadAllText(f, Encoding.Latin1).Contains("SECRET-OUTSIDE", StringComparison.Ordinal))
            .ToList();
        Assert.That(leaked, Is.Empty);
    }
}
