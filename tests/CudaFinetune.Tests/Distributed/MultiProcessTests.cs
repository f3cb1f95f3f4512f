using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CudaFinetune.Checkpoints;
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

    private string ConfigFile(FinetuneOptions options)
    {
        string path = Dir.File("config.json");
        using var stream = File.Create(path);
        using var w = new Utf8JsonWriter(stream);
        FinetuneOptionsJson.Write(w, options);
        return path;
    }

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

    private static int Finish((Process Process, StringBuilder Output) launched, string what)
    {
        using var process = launched.Process;
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{what} did not finish:\n{launched.Output}");
        }
        process.WaitForExit();
        return process.ExitCode;
    }

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
}
