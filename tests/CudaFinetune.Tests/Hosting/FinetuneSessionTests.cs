using CudaFinetune.Hosting;
using CudaFinetune.Reporting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Hosting;

/// <summary>The engine API end to end: options in, trained adapter and metrics out.</summary>
[TestFixture]
public sealed class FinetuneSessionTests : TempDirectoryFixture
{
    [Test]
    public void Loss_falls_on_a_learnable_task_and_every_output_is_written()
    {
        var (model, data) = LearnableTask.Write(Dir.Path);
        var events = new List<TrainingEvent>();
        FinetuneResult result;
        using (var session = FinetuneSession.Open(LearnableTask.Options(model, data, Dir.File("run"))))
        {
            session.Progress += events.Add;
            result = session.Train();
        }
        var steps = events.OfType<StepCompleted>().ToList();
        var evals = events.OfType<EvaluationCompleted>().ToList();
        Assert.That(events[0], Is.InstanceOf<TrainingStarted>());
        Assert.That(steps, Has.Count.EqualTo(result.Outcome.Steps));
        Assert.That(evals, Has.Count.GreaterThan(2));
        TestContext.Out.WriteLine(string.Join(", ", evals.Select(e => e.EvalLoss.ToString("F3", System.Globalization.CultureInfo.InvariantCulture))));
        Assert.That(steps[0].Loss, Is.GreaterThan(3.0), "starts near ln(32)");
        Assert.That(evals[^1].EvalLoss, Is.LessThan(0.5 * evals[0].EvalLoss), "eval loss at least halves");
        Assert.That(evals[^1].EvalLoss, Is.LessThan(1.0));
        foreach (string file in new[] { "run.json", "metrics.jsonl", "loss.png", "adapter/adapter_config.json", "adapter/adapter_model.safetensors" })
        {
            Assert.That(File.Exists(Path.Combine(result.OutputDir, file)), Is.True, file);
        }
        Assert.That(MetricsFile.ReadStepLosses(result.MetricsPath), Has.Count.EqualTo(steps.Count));
        Assert.That(MetricsFile.ReadEvalLosses(result.MetricsPath).Select(e => e.EvalLoss), Is.EqualTo(evals.Select(e => e.EvalLoss)));
    }

    [Test]
    public void Two_runs_with_the_same_seed_write_bitwise_identical_losses()
    {
        var (model, data) = LearnableTask.Write(Dir.Path);
        string Run(string name)
        {
            using var session = FinetuneSession.Open(LearnableTask.Options(model, data, Dir.File(name)) with { MaxSteps = 12 });
            return session.Train().MetricsPath;
        }
        string a = Run("a"), b = Run("b");
        var lossesA = MetricsFile.ReadStepLosses(a);
        Assert.That(lossesA, Has.Count.EqualTo(12));
        Assert.That(MetricsFile.ReadStepLosses(b), Is.EqualTo(lossesA), "step losses, compared as doubles");
        Assert.That(MetricsFile.ReadEvalLosses(b), Is.EqualTo(MetricsFile.ReadEvalLosses(a)));
        Assert.That(File.ReadAllBytes(Path.Combine(Dir.File("b"), "adapter", "adapter_model.safetensors")),
            Is.EqualTo(File.ReadAllBytes(Path.Combine(Dir.File("a"), "adapter", "adapter_model.safetensors"))));
        // A different seed changes LoRA init, dropout and shuffling, hence the losses.
        using var other = FinetuneSession.Open(LearnableTask.Options(model, data, Dir.File("c")) with { MaxSteps = 12, Seed = 8 });
        Assert.That(MetricsFile.ReadStepLosses(other.Train().MetricsPath), Is.Not.EqualTo(lossesA));
    }

    [Test]
    public void Cancellation_stops_after_the_current_step_and_writes_a_checkpoint_instead_of_the_adapter()
    {
        var (model, data) = LearnableTask.Write(Dir.Path);
        using var cancel = new CancellationTokenSource();
        using var session = FinetuneSession.Open(LearnableTask.Options(model, data, Dir.File("run")));
        session.Progress += e =>
        {
            if (e is StepCompleted { Step: 3 })
            {
                cancel.Cancel();
            }
        };
        var result = session.Train(cancel.Token);
        Assert.That(result.Outcome.Cancelled, Is.True);
        Assert.That(result.Outcome.Steps, Is.EqualTo(3));
        Assert.That(MetricsFile.ReadStepLosses(result.MetricsPath), Has.Count.EqualTo(3));
        Assert.That(result.AdapterDir, Is.Null, "an unfinished run writes no final adapter");
        Assert.That(result.LastCheckpoint, Is.EqualTo(Path.Combine(result.OutputDir, "checkpoints", "step-00000003")));
        Assert.DoesNotThrow(() => CudaFinetune.Checkpoints.Checkpoint.Open(result.LastCheckpoint!).Verify());
    }

    [Test]
    public void Full_fine_tuning_saves_a_loadable_model()
    {
        var (model, data) = LearnableTask.Write(Dir.Path);
        using var session = FinetuneSession.Open(LearnableTask.Options(model, data, Dir.File("run")) with { Peft = "none", MaxSteps = 4, Lr = 1e-3 });
        var result = session.Train();
        using var backend = new CudaFinetune.Backends.Cpu.CpuBackend(threads: 1);
        var (config, weights) = CudaFinetune.HuggingFace.HfModelDirectory.Load(result.ModelDir!, backend);
        using (weights)
        {
            Assert.That(config.VocabSize, Is.EqualTo(32));
            Assert.That(weights[CudaFinetune.Model.LlamaTensorNames.LmHead].Value.HostSpan<float>().ToArray(),
                Is.EqualTo(session.Model.Parameters[CudaFinetune.Model.LlamaTensorNames.LmHead].Value.HostSpan<float>().ToArray()));
        }
    }

    [Test]
    public void An_earlier_run_is_never_overwritten_without_being_asked()
    {
        var (model, data) = LearnableTask.Write(Dir.Path);
        var options = LearnableTask.Options(model, data, Dir.File("run")) with { MaxSteps = 1 };
        using (var session = FinetuneSession.Open(options))
        {
            session.Train();
        }
        byte[] before = File.ReadAllBytes(Path.Combine(Dir.File("run"), "metrics.jsonl"));
        var e = Assert.Throws<CudaFinetune.Errors.UserErrorException>(() => FinetuneSession.Open(options).Dispose());
        Assert.That(e!.Message, Does.Contain("--overwrite"));
        Assert.That(File.ReadAllBytes(Path.Combine(Dir.File("run"), "metrics.jsonl")), Is.EqualTo(before));
        using var again = FinetuneSession.Open(options with { Overwrite = true });
        Assert.That(again.Train().Outcome.Steps, Is.EqualTo(1));
    }
}
