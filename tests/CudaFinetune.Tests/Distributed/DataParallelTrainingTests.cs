using CudaFinetune.Backends.Cpu;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Hosting;
using CudaFinetune.Reporting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Distributed;

/// <summary>
/// Thread ranks on the CPU: W ranks train as one rank on the same global batch (up to f32 reduction order), every
/// rank writes its shards of each checkpoint, and a sharded checkpoint resumes bit for bit at its own world size and
/// correctly (resharded) at another.
/// </summary>
[TestFixture]
public sealed class DataParallelTrainingTests : LearnableTaskFixture
{
    private FinetuneOptions Options(string name, int worldSize, int accumulation) => LearnableTask.Options(ModelDir, DataFile, Dir.File(name)) with
    {
        WorldSize = worldSize,
        GradientAccumulationSteps = accumulation,
        NumEpochs = 2,
        Shuffle = true,
        EvalEvery = 3,
        SaveEvery = 2,
        KeepLast = 0,
        Scheduler = SchedulerKind.Cosine,
        WarmupSteps = 2,
        GradientClipping = 1.0,
        WeightDecay = 0.01,
    };

    private static void AssertClose(IReadOnlyList<(long Step, double Loss)> actual, IReadOnlyList<(long Step, double Loss)> expected, string what)
    {
        Assert.That(actual.Select(a => a.Step), Is.EqualTo(expected.Select(e => e.Step)), $"{what}: the same steps");
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.That(actual[i].Loss, Is.EqualTo(expected[i].Loss).Within(2e-4).Percent, $"{what} at step {expected[i].Step}");
        }
    }

    [TestCase(2, 1)]
    [TestCase(3, 1)]
    [TestCase(2, 2)]
    public void World_size_w_trains_as_one_rank_with_the_same_global_batch(int worldSize, int accumulation)
    {
        var one = TrainingRuns.Train(Options("one", 1, worldSize * accumulation));
        var many = TrainingRuns.Train(Options("many", worldSize, accumulation));

        Assert.That(many.Outcome.Steps, Is.EqualTo(one.Outcome.Steps));
        AssertClose(MetricsFile.ReadStepLosses(many.MetricsPath), MetricsFile.ReadStepLosses(one.MetricsPath), "train loss");
        AssertClose(MetricsFile.ReadEvalLosses(many.MetricsPath), MetricsFile.ReadEvalLosses(one.MetricsPath), "eval loss");
        var final = MetricsFile.ReadStepLosses(many.MetricsPath);
        Assert.That(final[^1].Loss, Is.LessThan(final[0].Loss), "the ranks learn the task together");
        Assert.That(many.AdapterDir, Is.Not.Null);
    }

    [Test]
    public void Small_buckets_reduced_during_the_backward_pass_give_the_same_bits_as_one_bucket()
    {
        // Without clipping the norm (summed in bucket order) does not touch the update, so the weights must match exactly.
        var options = Options("one-bucket", 2, 2) with { GradientClipping = 0 };
        var oneBucket = TrainingRuns.Train(options);
        long saved = Trainer.BucketElements;
        Trainer.BucketElements = 300;
        try
        {
            var many = TrainingRuns.Train(options with { OutputDir = Dir.File("many-buckets") });
            Assert.That(RunOutputs.Adapter(many.OutputDir), Is.EqualTo(RunOutputs.Adapter(oneBucket.OutputDir)), "adapter bytes");
            var losses = MetricsFile.ReadStepLosses(many.MetricsPath);
            Assert.That(losses, Is.EqualTo(MetricsFile.ReadStepLosses(oneBucket.MetricsPath)), "step losses");
        }
        finally
        {
            Trainer.BucketElements = saved;
        }
    }

    [TestCase(2, 1)]
    [TestCase(3, 1)]
    public void Stage_3_gathers_each_layer_and_trains_to_the_same_bits_as_stage_2(int worldSize, int accumulation)
    {
        // world 3: the last group of each epoch leaves ranks without a micro-batch, which stand in for the others' gathers.
        var stage2 = TrainingRuns.Train(Options("stage2", worldSize, accumulation));
        using (var session = FinetuneSession.Open(Options("stage3", worldSize, accumulation) with { ZeroStage = 3 }))
        {
            var layers = (CudaFinetune.Distributed.ShardedLayerWeights)session.Model.LayerWeights!;
            Assert.That(layers.PartElements * worldSize, Is.EqualTo(layers.PaddedLayer), "each rank keeps an equal part of every layer");
            Assert.That(layers.PaddedLayer - layers.LayerElements, Is.LessThan(worldSize * 64));
            Assert.Throws<CudaFinetune.Errors.UserErrorException>(() => session.Generate("x"), "generation needs whole weights");
            session.Train();
        }
        Assert.That(RunOutputs.Adapter(Dir.File("stage3")), Is.EqualTo(RunOutputs.Adapter(stage2.OutputDir)), "adapter bytes");
        Assert.That(DeterministicMetrics.Read(Dir.File("stage3")), Is.EqualTo(DeterministicMetrics.Read(stage2.OutputDir)), "metrics, eval included");
    }

    [Test]
    public void Stage_3_needs_lora()
    {
        var e = Assert.Throws<CudaFinetune.Errors.UserErrorException>(() => FinetuneSession.Open(Options("full", 2, 1) with { ZeroStage = 3, Peft = "none" }).Dispose());
        Assert.That(e!.Message, Does.Contain("--zero-stage 3").And.Contain("LoRA"));
    }

    [Test]
    public void Every_rank_writes_its_shards_and_one_manifest_indexes_them()
    {
        var result = TrainingRuns.Train(Options("run", 3, 1) with { MaxSteps = 2 });
        var checkpoint = Checkpoint.Open(result.LastCheckpoint!);
        var m = checkpoint.Manifest;
        Assert.That(m.WorldSize, Is.EqualTo(3));
        Assert.That(m.Shards.Select(s => s.File), Is.EquivalentTo(Enumerable.Range(0, 3).SelectMany(r => new[]
        {
            CheckpointFormat.ShardFileName(CheckpointFormat.ModelGroup, r), CheckpointFormat.ShardFileName(CheckpointFormat.OptimizerGroup, r),
        })));
        Assert.That(m.Tensors.Where(t => t.Slice is not null), Is.Not.Empty, "a parameter that straddles two shards is stored as two slices");
        Assert.That(Directory.GetFiles(result.LastCheckpoint!, "*.part*", SearchOption.AllDirectories), Is.Empty, "no rank's part file is left behind");
        Assert.DoesNotThrow(checkpoint.Verify);

        // The slices put together are whole trained weights: every LoRA B (zero at the start) has moved.
        using var backend = new CpuBackend(threads: 1);
        using var session = FinetuneSession.Open(Options("reader", 1, 1));
        checkpoint.Load(session.Trainer.Optimizer.CheckpointPieces, backend);
        foreach (var p in session.Model.TrainableParameters.Where(p => p.Name.Contains("lora_B", StringComparison.Ordinal)))
        {
            Assert.That(p.Value.HostSpan<float>().ToArray().Count(x => x != 0), Is.EqualTo(p.Value.ElementCount), p.Name);
        }
    }

    [Test]
    public void A_sharded_run_resumes_bit_for_bit_at_the_same_world_size()
    {
        var reference = TrainingRuns.Train(Options("reference", 2, 1));
        int stepsPerEpoch;
        using (var probe = FinetuneSession.Open(Options("probe", 2, 1)))
        {
            stepsPerEpoch = probe.Trainer.StepsPerEpoch;
        }
        long k = stepsPerEpoch + 1;
        var stopped = TrainingRuns.Train(Options("resumed", 2, 1), cancelAfter: k);
        Assert.That(stopped.Outcome.Cancelled, Is.True);
        Assert.That(stopped.Outcome.Steps, Is.EqualTo(k), "every rank stopped after the step at which the stop was asked");

        using (var session = FinetuneSession.Open(Options("resumed", 2, 1), new ResumeRequest(Dir.File("resumed"))))
        {
            Assert.That(session.Resumed!.Step, Is.EqualTo(k));
            Assert.That(session.Resumed.Warnings, Is.Empty);
            session.Train();
        }
        Assert.That(DeterministicMetrics.Read(Dir.File("resumed")), Is.EqualTo(DeterministicMetrics.Read(reference.OutputDir)), "metrics.jsonl");
        Assert.That(RunOutputs.Adapter(Dir.File("resumed")), Is.EqualTo(RunOutputs.Adapter(reference.OutputDir)), "adapter bytes");
        Assert.That(RunOutputs.FinalState(Dir.File("resumed")), Is.EqualTo(RunOutputs.FinalState(reference.OutputDir)), "every rank's final weight and moment slices");
    }

    [TestCase(2, 1)]
    [TestCase(1, 3)]
    [TestCase(3, 2)]
    public void A_sharded_checkpoint_resumes_resharded_at_another_world_size(int savedWorld, int resumedWorld)
    {
        const int globalBatch = 6;
        var stopped = TrainingRuns.Train(Options("run", savedWorld, globalBatch / savedWorld), cancelAfter: 3);
        Assert.That(stopped.Outcome.Steps, Is.EqualTo(3));
        var saved = Checkpoint.Open(stopped.LastCheckpoint!);

        using var session = FinetuneSession.Open(Options("run", resumedWorld, globalBatch / resumedWorld), new ResumeRequest(Dir.File("run")));
        Assert.That(session.Resumed!.Step, Is.EqualTo(3));
        Assert.That(session.Resumed.Warnings, Has.Some.Contains("world_size changed").And.Some.Contains("resharded"));

        // What every rank restored is exactly what the saving ranks held: the checkpoint read whole at world size 1 …
        using var backend = new CpuBackend(threads: 1);
        using var reader = FinetuneSession.Open(Options("reader", 1, globalBatch));
        saved.Load(reader.Trainer.Optimizer.CheckpointPieces, backend);
        // … equals the weights the resumed ranks gathered from their shards.
        var restored = session.Model.TrainableParameters.ToDictionary(p => p.Name, p => p.FullPrecision.HostSpan<float>().ToArray());
        foreach (var p in reader.Model.TrainableParameters)
        {
            Assert.That(restored[p.Name], Is.EqualTo(p.FullPrecision.HostSpan<float>().ToArray()), p.Name);
        }

        // Training on matches a run that had the resumed world size all along (the same global batch), up to f32 order.
        var result = session.Train();
        var straight = TrainingRuns.Train(Options("straight", resumedWorld, globalBatch / resumedWorld));
        Assert.That(result.Outcome.Steps, Is.EqualTo(straight.Outcome.Steps));
        AssertClose(MetricsFile.ReadStepLosses(result.MetricsPath), MetricsFile.ReadStepLosses(straight.MetricsPath), "train loss after resharding");
    }
}
