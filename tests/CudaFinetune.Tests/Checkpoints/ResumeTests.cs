using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.Reporting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Checkpoints;

/// <summary>
/// A run stopped at any step and resumed from its checkpoint ends with the same metrics.jsonl
/// (every field but the wall-clock tokens_per_s) and bitwise the same adapter and optimizer state
/// as the run that was never stopped.
/// </summary>
[TestFixture]
public sealed class ResumeTests : LearnableTaskFixture
{
    private FinetuneOptions Options(string name, int accumulation = 1) => LearnableTask.Options(ModelDir, DataFile, Dir.File(name)) with
    {
        NumEpochs = 3,
        GradientAccumulationSteps = accumulation,
        LoraDropout = 0.1,
        Shuffle = true,
        EvalEvery = 4,
        SaveEvery = 3,
        KeepLast = 0,
        Scheduler = SchedulerKind.Cosine,
        WarmupSteps = 3,
        GradientClipping = 1.0,
        WeightDecay = 0.01,
    };

    private static FinetuneResult Train(FinetuneOptions options, ResumeRequest? resume = null, long cancelAfter = -1)
        => TrainingRuns.Train(options, resume, cancelAfter);

    [TestCase("mid-epoch", 1)]
    [TestCase("epoch-start", 1)]
    [TestCase("mid-epoch", 2)]
    [TestCase("epoch-start", 3)]
    public void An_interrupted_and_resumed_run_equals_the_uninterrupted_run(string where, int accumulation)
    {
        var reference = Train(Options("reference", accumulation));
        long stepsPerEpoch;
        using (var probe = FinetuneSession.Open(Options("probe", accumulation)))
        {
            stepsPerEpoch = probe.Trainer.StepsPerEpoch;
        }
        long k = where == "epoch-start" ? stepsPerEpoch : stepsPerEpoch + stepsPerEpoch / 2;
        Assert.That(k, Is.LessThan(reference.Outcome.Steps));

        var stopped = Train(Options("resumed", accumulation), cancelAfter: k);
        Assert.That(stopped.Outcome.Cancelled, Is.True);
        Assert.That(stopped.Outcome.Steps, Is.EqualTo(k));
        Assert.That(stopped.AdapterDir, Is.Null);
        Assert.That(Checkpoint.Open(stopped.LastCheckpoint!).Manifest.Reason, Is.EqualTo(CheckpointReason.Interrupted));

        using (var session = FinetuneSession.Open(Options("resumed", accumulation), new ResumeRequest(Dir.File("resumed"))))
        {
            Assert.That(session.Resumed!.Step, Is.EqualTo(k));
            Assert.That(session.Resumed.Warnings, Is.Empty);
            session.Train();
        }
        RunOutputs.AssertSameRun(reference.OutputDir, Dir.File("resumed"));
    }

    [Test]
    public void Resuming_from_any_earlier_checkpoint_reproduces_the_rest_of_the_run()
    {
        var reference = Train(Options("reference", accumulation: 2));
        var listings = CheckpointStore.List(reference.OutputDir);
        Assert.That(listings.Select(l => l.Manifest!.Reason), Does.Contain(CheckpointReason.Periodic).And.Contain(CheckpointReason.EpochEnd).And.Contain(CheckpointReason.End));
        foreach (var start in listings.Where(l => l.Manifest!.Reason is CheckpointReason.Periodic or CheckpointReason.EpochEnd).Take(4))
        {
            // A copy of the run as a crash right after this checkpoint would have left it (later checkpoints lost,
            // metrics.jsonl already longer): resuming replays the steps after it and must give the same end.
            string copy = Dir.File($"from-{start.Step}");
            DirectoryTrees.Copy(reference.OutputDir, copy);
            Directory.Delete(Path.Combine(copy, "adapter"), recursive: true);
            foreach (var later in listings.Where(l => l.Step > start.Step))
            {
                Directory.Delete(Path.Combine(CheckpointStore.CheckpointsDirectory(copy), later.Name), recursive: true);
            }
            using (var session = FinetuneSession.Open(Options(Path.GetFileName(copy), 2), new ResumeRequest(Path.Combine(CheckpointStore.CheckpointsDirectory(copy), start.Name))))
            {
                session.Train();
            }
            RunOutputs.AssertSameRun(reference.OutputDir, copy);
        }
    }

    [Test]
    public void More_epochs_continue_the_run_with_a_warning_and_the_plan_can_change()
    {
        Train(Options("run") with { NumEpochs = 1 });
        using var session = FinetuneSession.Open(Options("run") with { NumEpochs = 2, Lr = 5e-3 }, new ResumeRequest(Dir.File("run")));
        Assert.That(session.Resumed!.Warnings, Has.Some.Contains("num_epochs changed from 1 to 2").And.Some.Contains("lr changed"));
        long before = session.Resumed.Step;
        var result = session.Train();
        Assert.That(result.Outcome.Steps, Is.EqualTo(2 * before));
        var steps = MetricsFile.ReadStepLosses(result.MetricsPath).Select(s => s.Step).ToList();
        Assert.That(steps, Is.EqualTo(Enumerable.Range(1, (int)result.Outcome.Steps).Select(i => (long)i)), "every step once, in order");
    }

    [Test]
    public void A_checkpoint_from_another_environment_resumes_with_a_warning()
    {
        var first = Train(Options("run") with { MaxSteps = 3 });
        string manifest = Path.Combine(first.LastCheckpoint!, CheckpointFormat.ManifestFileName);
        string text = File.ReadAllText(manifest);
        string dotnet = System.Text.RegularExpressions.Regex.Match(text, "\"dotnet\": \"([^\"]*)\"").Groups[1].Value;
        File.WriteAllBytes(manifest, ManifestFuzzing.Reseal(text.Replace($"\"dotnet\": \"{dotnet}\"", "\"dotnet\": \".NET 9.0.0\"", StringComparison.Ordinal)));
        using var session = FinetuneSession.Open(Options("run") with { MaxSteps = 4 }, new ResumeRequest(Dir.File("run")));
        Assert.That(session.Resumed!.Warnings, Has.Some.Contains("environment: dotnet was '.NET 9.0.0'"));
    }

    [TestCase("lora_r", TestName = "A changed LoRA rank is refused")]
    [TestCase("lora_targets", TestName = "Changed LoRA targets are refused")]
    [TestCase("batch_size", TestName = "A changed batch size is refused")]
    [TestCase("seed", TestName = "A changed seed is refused")]
    public void Changes_that_cannot_be_honoured_are_refused_naming_the_field(string field)
    {
        Train(Options("run") with { MaxSteps = 4 });
        var changed = field switch
        {
            "lora_r" => Options("run") with { LoraR = 4 },
            "lora_targets" => Options("run") with { LoraTargets = "q_proj" },
            "batch_size" => Options("run") with { BatchSize = 2 },
            _ => Options("run") with { Seed = 99 },
        };
        var e = Assert.Throws<UserErrorException>(() => FinetuneSession.Open(changed with { MaxSteps = 8 }, new ResumeRequest(Dir.File("run"))).Dispose());
        Assert.That(e!.Message, Does.Contain(field));
    }

    [Test]
    public void Changed_training_data_is_refused_unless_forced()
    {
        Train(Options("run") with { MaxSteps = 4 });
        var lines = File.ReadAllLines(DataFile);
        File.WriteAllLines(DataFile, lines.Reverse());
        var e = Assert.Throws<UserErrorException>(() => FinetuneSession.Open(Options("run") with { MaxSteps = 8 }, new ResumeRequest(Dir.File("run"))).Dispose());
        Assert.That(e!.Message, Does.Contain("training data differs").And.Contain("--force"));
        using var forced = FinetuneSession.Open(Options("run") with { MaxSteps = 8 }, new ResumeRequest(Dir.File("run"), Force: true));
        Assert.That(forced.Resumed!.Warnings, Has.Some.Contains("--force"));
        Assert.That(forced.Train().Outcome.Steps, Is.EqualTo(8));
    }

    [Test]
    public void A_damaged_newest_checkpoint_falls_back_to_the_newest_valid_one_unless_strict()
    {
        Train(Options("run") with { MaxSteps = 9 });
        string checkpoints = CheckpointStore.CheckpointsDirectory(Dir.File("run"));
        string newest = CheckpointStore.Directories(checkpoints)[0];
        Assert.That(Path.GetFileName(newest), Is.EqualTo("step-00000009"));
        CheckpointDamage.FlipByteInTensor(newest);

        var e = Assert.Throws<CheckpointCorruptException>(() => FinetuneSession.Open(Options("run") with { MaxSteps = 12 }, new ResumeRequest(Dir.File("run"), Strict: true)).Dispose());
        Assert.That(e!.Message, Does.Contain("step-00000009").And.Contain("rank-00000.bin"));

        using var session = FinetuneSession.Open(Options("run") with { MaxSteps = 12 }, new ResumeRequest(Dir.File("run")));
        Assert.That(session.Resumed!.Step, Is.EqualTo(6));
        Assert.That(session.Resumed.Skipped, Has.Count.EqualTo(1).And.Some.Contains("step-00000009"));
        var result = session.Train();
        Assert.That(MetricsFile.ReadStepLosses(result.MetricsPath).Select(s => s.Step), Is.EqualTo(Enumerable.Range(1, 12).Select(i => (long)i)));
    }

    [Test]
    public void Retention_keeps_the_newest_k_and_the_best_by_eval_loss()
    {
        var result = Train(Options("run") with { SaveEvery = 2, KeepLast = 2, EvalEvery = 2, NumEpochs = 2 });
        var listings = CheckpointStore.List(result.OutputDir);
        var all = listings.Select(l => l.Manifest!).ToList();
        Assert.That(listings.All(l => l.Valid), Is.True);
        long newest = result.Outcome.Steps;
        Assert.That(CheckpointStore.ReadLatest(CheckpointStore.CheckpointsDirectory(result.OutputDir)), Is.EqualTo(CheckpointFormat.DirectoryNameFor(newest)));
        // The two newest, plus (when it is older) the best eval loss among all checkpoints written.
        Assert.That(listings.Count, Is.InRange(2, 3));
        Assert.That(listings[^1].Step, Is.EqualTo(newest));
        var evalLosses = MetricsFile.ReadEvalLosses(result.MetricsPath).ToDictionary(e => e.Step, e => e.EvalLoss);
        double bestSaved = evalLosses.Values.Min(); // every evaluation happened at a step that was checkpointed
        Assert.That(all.Select(m => m.EvalLossAtStep), Does.Contain(bestSaved));
    }

    [Test]
    public void A_fresh_run_refuses_a_directory_with_checkpoints_and_overwrite_removes_them()
    {
        Train(Options("run") with { MaxSteps = 3 });
        File.Delete(Path.Combine(Dir.File("run"), "run.json"));
        File.Delete(Path.Combine(Dir.File("run"), "metrics.jsonl"));
        var e = Assert.Throws<UserErrorException>(() => FinetuneSession.Open(Options("run")).Dispose());
        Assert.That(e!.Message, Does.Contain("--resume"));
        Train(Options("run") with { MaxSteps = 2, Overwrite = true });
        Assert.That(CheckpointStore.List(Dir.File("run")).Select(l => l.Step), Is.EqualTo(new long[] { 2 }));
    }

    [Test]
    public void A_stop_during_an_evaluation_ends_it_at_once_and_the_resumed_run_evaluates_again()
    {
        var reference = Train(Options("reference"));
        FinetuneResult stopped;
        using (var cancel = new CancellationTokenSource())
        using (var session = FinetuneSession.Open(Options("resumed")))
        {
            // The evaluation after step 4 (--eval-every 4) begins right after this event: the stop comes as it starts.
            session.Progress += e =>
            {
                if (e is StepCompleted { Step: 4 })
                {
                    cancel.Cancel();
                }
            };
            stopped = session.Train(cancel.Token);
        }
        Assert.That(stopped.Outcome.Cancelled, Is.True);
        Assert.That(stopped.Outcome.Steps, Is.EqualTo(4));
        Assert.That(MetricsFile.ReadEvalLosses(stopped.MetricsPath), Is.Empty, "the evaluation did not run to its end");
        var manifest = Checkpoint.Open(stopped.LastCheckpoint!).Manifest;
        Assert.That(manifest.Reason, Is.EqualTo(CheckpointReason.Interrupted));
        Assert.That(manifest.Training.EvaluatedAt, Is.Not.EqualTo(4));

        Train(Options("resumed"), new ResumeRequest(Dir.File("resumed")));
        Assert.That(MetricsFile.ReadEvalLosses(Dir.File("resumed/metrics.jsonl")).Count(e => e.Step == 4), Is.EqualTo(1), "evaluated once, after the resume");
        RunOutputs.AssertSameRun(reference.OutputDir, Dir.File("resumed"));
    }

    [Test]
    public void Temporary_files_a_killed_run_left_are_removed_when_it_resumes()
    {
        Train(Options("run") with { MaxSteps = 3 });
        string checkpoints = CheckpointStore.CheckpointsDirectory(Dir.File("run"));
        string[] leftovers =
        [
            Path.Combine(checkpoints, $".latest.{Guid.NewGuid():N}.tmp"),
            Path.Combine(Dir.File("run"), $".metrics.jsonl.{Guid.NewGuid():N}.tmp"),
        ];
        string users = Path.Combine(Dir.File("run"), ".notes.tmp"); // not of our form: kept
        foreach (string file in leftovers.Append(users))
        {
            File.WriteAllText(file, "left by a kill");
        }
        Train(Options("run") with { MaxSteps = 4 }, new ResumeRequest(Dir.File("run")));
        Assert.That(leftovers.Where(File.Exists), Is.Empty);
        Assert.That(File.Exists(users), Is.True);
    }

    [Test]
    public void A_checkpoint_outside_its_run_whose_run_is_gone_needs_an_output_dir()
    {
        var done = Train(Options("gone") with { MaxSteps = 3 });
        string detached = Dir.File("detached");
        DirectoryTrees.Copy(done.LastCheckpoint!, detached);
        Directory.Delete(done.OutputDir, recursive: true);

        var (code, _, error) = CliRuns.Run(["finetune", "--resume", detached]);
        Assert.That(code, Is.EqualTo(CudaFinetune.Cli.Program.ExitUserError), error);
        Assert.That(error, Does.Contain("is a checkpoint outside any run's checkpoints/ directory").And.Contain("give --output-dir"));
        Assert.That(Directory.Exists(done.OutputDir), Is.False, "the deleted run directory is not recreated");

        (code, _, error) = CliRuns.Run(["finetune", "--resume", detached, "--output-dir", Dir.File("continued"), "--max-steps", "4"]);
        Assert.That(code, Is.Zero, error);
        Assert.That(CheckpointStore.List(Dir.File("continued")).Max(l => l.Step), Is.EqualTo(4));
    }

    [Test]
    public void Links_planted_among_the_runs_own_files_are_refused_and_nothing_is_written_through_them()
    {
        Train(Options("run") with { MaxSteps = 2 });
        string outside = Dir.File("outside.txt");
        File.WriteAllText(outside, "not the run's");
        string metrics = Path.Combine(Dir.File("run"), RunFileNames.MetricsFileName);
        File.Delete(metrics);
        File.CreateSymbolicLink(metrics, outside);

        foreach (var attempt in new Func<FinetuneResult>[]
        {
            () => Train(Options("run") with { MaxSteps = 3, Overwrite = true }),
            () => Train(Options("run") with { MaxSteps = 3 }, new ResumeRequest(Dir.File("run"))),
        })
        {
            var e = Assert.Throws<UserErrorException>(() => attempt());
            Assert.That(e!.Message, Does.StartWith($"'{metrics}' is a symbolic link"));
        }
        Assert.That(File.ReadAllText(outside), Is.EqualTo("not the run's"));
        Assert.That(CheckpointStore.List(Dir.File("run")).Select(l => l.Step), Is.EqualTo(new long[] { 2 }), "--overwrite deleted nothing");
    }
}
