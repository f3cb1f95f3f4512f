using System.Text.Json;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Checkpoints;
using CudaFinetune.Config;
using CudaFinetune.Cuda.Backend;
using CudaFinetune.Cuda.Hosting;
using CudaFinetune.Hosting;
using CudaFinetune.HuggingFace;
using CudaFinetune.HuggingFace.Safetensors;
using CudaFinetune.IO;
using CudaFinetune.Numerics;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Training;

/// <summary>
/// The model and trainer, unchanged, on the cuda backend's code path with the kernels run by the emulator, in mixed
/// precision (bf16 weights and activations, fp32 masters, gradients and moments): the losses follow the CPU backend's
/// fp32 run within bf16 tolerance, and a stopped run resumes bit for bit.
/// </summary>
[TestFixture]
public sealed class CudaEmulatedTrainingTests : TempDirectoryFixture
{
    private string _model = null!;
    private string _data = null!;

    [OneTimeSetUp]
    public void InstallBackends() => CudaAccelerators.Install();

    [SetUp]
    public void SetUp() => (_model, _data) = LearnableTask.Write(Dir.Path, LearnableTask.KernelSizedConfig);

    private FinetuneOptions Options(string name, string device, string peft = "lora") => LearnableTask.Options(_model, _data, Dir.File(name)) with
    {
        Device = device,
        Peft = peft,
        Lr = peft == "lora" ? 5e-3 : 1e-3,
        NumEpochs = 2,
        Shuffle = true,
        EvalEvery = 4,
        SaveEvery = 3,
        KeepLast = 0,
        GradientClipping = 1.0,
        WeightDecay = 0.01,
    };

    private static FinetuneResult Train(FinetuneOptions options, ResumeRequest? resume = null, long cancelAfter = -1)
        => TrainingRuns.Train(options, resume, cancelAfter);

    /// <summary>(step, loss) of every optimizer step and (step, eval_loss) of every evaluation, in order.</summary>
    private static List<(string Kind, long Step, double Loss)> Losses(string outputDir)
    {
        var losses = new List<(string, long, double)>();
        foreach (string line in File.ReadLines(Path.Combine(outputDir, "metrics.jsonl")))
        {
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            long step = root.GetProperty("step").GetInt64();
            if (root.TryGetProperty("eval_loss", out var eval))
            {
                losses.Add(("eval", step, eval.GetDouble()));
            }
            else if (root.TryGetProperty("loss", out var loss))
            {
                losses.Add(("train", step, loss.GetDouble()));
            }
        }
        return losses;
    }

    [TestCase("lora")]
    [TestCase("none")]
    public void Losses_follow_the_cpu_backend_within_bf16_tolerance(string peft)
    {
        // With LoRA dropout (0.1): both backends draw the same masks.
        var cpu = Losses(Train(Options("cpu", "cpu", peft)).OutputDir);
        var emulated = Losses(Train(Options("emulated", "cuda-emulated", peft)).OutputDir);
        Assert.That(emulated.Select(l => (l.Kind, l.Step)), Is.EqualTo(cpu.Select(l => (l.Kind, l.Step))));
        Assert.That(cpu.Count(l => l.Kind == "train"), Is.GreaterThan(8));
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, cpu.Zip(emulated, (c, e) => $"{c.Kind} {c.Step}: cpu {c.Loss:F5} emulated {e.Loss:F5}")));
        // bf16 weights and activations against fp32: the first loss differs by rounding alone; afterwards the two
        // trajectories drift apart a little. Evaluations average many tokens, one batch's loss is noisier.
        static double Relative(double got, double expected) => Math.Abs(got - expected) / Math.Max(1, Math.Abs(expected));
        Assert.That(Relative(emulated[0].Loss, cpu[0].Loss), Is.LessThan(1e-2), "the first step's loss");
        for (int i = 0; i < cpu.Count; i++)
        {
            double allowed = cpu[i].Kind == "eval" ? 2e-2 : 5e-2;
            Assert.That(Relative(emulated[i].Loss, cpu[i].Loss), Is.LessThan(allowed), $"{cpu[i].Kind} loss at step {cpu[i].Step}: cpu {cpu[i].Loss}, cuda-emulated {emulated[i].Loss}");
        }
        double meanTrainDeviation = cpu.Zip(emulated).Where(p => p.First.Kind == "train").Average(p => Relative(p.Second.Loss, p.First.Loss));
        Assert.That(meanTrainDeviation, Is.LessThan(1e-2), "mean relative deviation of the training losses");
        // The task is learnt on both: the last evaluation is well below the first.
        var evals = emulated.Where(l => l.Kind == "eval").Select(l => l.Loss).ToList();
        Assert.That(evals[^1], Is.LessThan(evals[0] * 0.9));
    }

    [Test]
    public void A_stopped_run_resumes_exactly()
    {
        var reference = Train(Options("reference", "cuda-emulated") with { NumEpochs = 1 });
        var stopped = Train(Options("resumed", "cuda-emulated") with { NumEpochs = 1 }, cancelAfter: 5);
        Assert.That(stopped.Outcome.Cancelled, Is.True);
        var manifest = Checkpoint.Open(stopped.LastCheckpoint!).Manifest;
        Assert.That((manifest.Backend, manifest.WeightDType, manifest.MasterDType, manifest.OptimizerDType),
            Is.EqualTo(("cuda-emulated", DType.BF16, (DType?)DType.F32, DType.F32)), "bf16 weights are saved as their fp32 masters, with fp32 moments");
        using (var session = FinetuneSession.Open(Options("resumed", "cuda-emulated") with { NumEpochs = 1 }, new ResumeRequest(Dir.File("resumed"))))
        {
            Assert.That(session.Resumed!.Step, Is.EqualTo(5));
            session.Train();
        }
        Assert.That(DeterministicMetrics.Read(Dir.File("resumed")), Is.EqualTo(DeterministicMetrics.Read(reference.OutputDir)));
        Assert.That(File.ReadAllBytes(Path.Combine(Dir.File("resumed"), "adapter", "adapter_model.safetensors")),
            Is.EqualTo(File.ReadAllBytes(Path.Combine(reference.OutputDir, "adapter", "adapter_model.safetensors"))));
    }

    [Test]
    public void Full_fine_tuning_keeps_fp32_masters_read_from_the_file_and_bf16_weights_rounded_from_them()
    {
        using var session = FinetuneSession.Open(Options("masters", "cuda-emulated", peft: "none"));
        var backend = session.Model.Backend;
        using var reader = new SafetensorsReader(Path.Combine(_model, HfModelDirectory.WeightsFileName));
        using var cpu = new CpuBackend(threads: 1);
        foreach (var p in session.Model.TrainableParameters)
        {
            Assert.That((p.Value.DType, p.Master?.DType), Is.EqualTo((DType.BF16, (DType?)DType.F32)), p.Name);
            using var file = cpu.Allocate(DType.F32, p.Value.Shape);
            reader.ReadInto(p.Name, file);
            var master = new float[p.Value.ElementCount];
            backend.CopyToHost<float>(p.Master!, master);
            Assert.That(master, Is.EqualTo(file.HostSpan<float>().ToArray()), $"{p.Name}: master");
            var weight = new ushort[p.Value.ElementCount];
            backend.CopyToHost<ushort>(p.Value, weight);
            Assert.That(weight, Is.EqualTo(master.Select(HalfPrecision.ToBFloat16).ToArray()), $"{p.Name}: bf16 weight");
        }
    }
}
