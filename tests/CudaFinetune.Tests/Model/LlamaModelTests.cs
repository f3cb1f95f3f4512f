using CudaFinetune.Backends.Cpu;
using CudaFinetune.Model;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;
using static CudaFinetune.Tests.Support.HostTensors;

namespace CudaFinetune.Tests.Model;

/// <summary>
/// The whole model: its loss equals an independent LlamaForCausalLM reference, and its gradients
/// (full fine-tuning and LoRA, tied and untied heads, with LoRA dropout on) equal central finite
/// differences in double precision within |Δ| ≤ 1e-7 + 1e-6·|g|.
/// </summary>
[TestFixture]
public sealed class LlamaModelTests
{
    [TestCase(false)]
    [TestCase(true)]
    public void Loss_equals_the_reference_LlamaForCausalLM(bool tied)
    {
        var config = TestModels.Small(tied);
        var weights = TestModels.RandomWeights(config, 1);
        var batch = TestModels.Batch(config, 2, batch: 3, seqLen: 7);
        using var backend = new CpuBackend(DType.F64, threads: 2);
        using var model = TestModels.Create(backend, config, weights);
        var loss = model.Forward(batch);
        double expected = ReferenceLlama.Loss(config, weights, 3, 7, batch.InputIds, batch.Labels);
        Assert.That(loss.Tokens, Is.EqualTo(3 * 6 - 2));
        Assert.That(loss.Mean, Is.EqualTo(expected).Within(1e-12));
    }

    [Test]
    public void Lora_model_loss_equals_the_reference_with_PEFT_scaling()
    {
        var config = TestModels.Small(false);
        var weights = TestModels.RandomWeights(config, 3);
        var batch = TestModels.Batch(config, 4);
        var lora = new LoraConfig { Rank = 3, Alpha = 6, Dropout = 0, TargetModules = LoraConfig.ParseTargets("all-linear") };
        using var backend = new CpuBackend(DType.F64, threads: 2);
        using var model = TestModels.Create(backend, config, weights, new LlamaModelOptions { Lora = lora, Seed = 5 });
        var rng = new Random(6);
        var adapters = new Dictionary<string, (double[] A, double[] B, int Rank)>();
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            foreach (string module in LlamaTensorNames.LinearModules)
            {
                var a = model.Parameters[LoraConfig.TensorName(l, module, 'A')];
                var b = model.Parameters[LoraConfig.TensorName(l, module, 'B')];
                double[] bValues = HostTensors.Random(rng, (int)b.Value.ElementCount, 0.5);
                Write(backend, b.Value, bValues);
                adapters[LlamaTensorNames.LinearModule(l, module)] = (Read(backend, a.Value), bValues, 3);
            }
        }
        double expected = ReferenceLlama.Loss(config, weights, 2, 5, batch.InputIds, batch.Labels, adapters, 2.0);
        Assert.That(model.Forward(batch).Mean, Is.EqualTo(expected).Within(1e-12));
    }

    [Test]
    public void Fresh_lora_adapters_leave_the_base_model_unchanged_and_A_follows_kaiming_uniform()
    {
        var config = TestModels.Small(false);
        var weights = TestModels.RandomWeights(config, 7);
        var batch = TestModels.Batch(config, 8);
        using var backend = new CpuBackend(DType.F64, threads: 1);
        using var baseModel = TestModels.Create(backend, config, weights);
        using var loraModel = TestModels.Create(backend, config, weights, new LlamaModelOptions { Lora = new LoraConfig { Dropout = 0 } });
        Assert.That(loraModel.Forward(batch).Mean, Is.EqualTo(baseModel.Forward(batch).Mean));
        var trainable = loraModel.TrainableParameters.Select(p => p.Name).ToArray();
        Assert.That(trainable, Has.Length.EqualTo(2 * 2 * config.NumHiddenLayers), "q_proj and v_proj by default, A and B each");
        Assert.That(trainable, Is.All.Contains(".lora_"));
        double bound = 1 / Math.Sqrt(config.HiddenSize);
        double[] a = Read(backend, loraModel.Parameters[LoraConfig.TensorName(0, "q_proj", 'A')].Value);
        Assert.That(a, Is.All.InRange(-bound, bound));
        Assert.That(a.Distinct().Count(), Is.EqualTo(a.Length));
        Assert.That(Read(backend, loraModel.Parameters[LoraConfig.TensorName(0, "q_proj", 'B')].Value), Is.All.EqualTo(0.0));
        Assert.That(loraModel.Parameters[LlamaTensorNames.LinearWeight(0, "q_proj")].Trainable, Is.False, "base weights are frozen");
    }

    private static IEnumerable<TestCaseData> GradientCases()
    {
        yield return new TestCaseData(false, null).SetName("Full fine-tuning gradients match finite differences (untied head)");
        yield return new TestCaseData(true, null).SetName("Full fine-tuning gradients match finite differences (tied embeddings)");
        yield return new TestCaseData(false, new LoraConfig { Rank = 2, Alpha = 5, Dropout = 0.2, TargetModules = LoraConfig.ParseTargets("all-linear") })
            .SetName("LoRA gradients on all linear layers with dropout match finite differences");
        yield return new TestCaseData(true, new LoraConfig { Dropout = 0 }).SetName("LoRA gradients with default targets match finite differences");
    }

    [TestCaseSource(nameof(GradientCases))]
    public void Gradients_match_finite_differences(bool tied, LoraConfig? lora)
    {
        var config = TestModels.Small(tied);
        var weights = TestModels.RandomWeights(config, 11);
        var batch = TestModels.Batch(config, 12);
        using var backend = new CpuBackend(DType.F64, threads: 2);
        using var model = TestModels.Create(backend, config, weights, new LlamaModelOptions { Lora = lora, Seed = 13 });
        var rng = new Random(14);
        if (lora is not null)
        {
            foreach (var b in model.TrainableParameters.Where(p => p.Name.Contains("lora_B", StringComparison.Ordinal)))
            {
                Write(backend, b.Value, HostTensors.Random(rng, (int)b.Value.ElementCount, 0.5));
            }
        }
        const long step = 3;
        model.ZeroGradients();
        model.ForwardBackward(batch, step, gradientScale: 1);
        int checkedTensors = 0;
        foreach (var p in model.TrainableParameters.ToArray())
        {
            double[] values = Read(backend, p.Value);
            double[] analytic = Read(backend, p.Gradient!);
            // The dropout mask depends on the step, so finite differences evaluate at the same step.
            double Loss() => model.Forward(batch, training: true, step).Mean;
            FiniteDifferences.AssertMatches(p.Name, values, analytic, Loss, () => Write(backend, p.Value, values),
                FiniteDifferences.Sample(rng, values.Length, 5));
            checkedTensors++;
        }
        int expectedTensors = lora is null
            ? LlamaTensorNames.BaseWeights(config).Count()
            : 2 * lora.TargetModules.Count * config.NumHiddenLayers;
        Assert.That(checkedTensors, Is.EqualTo(expectedTensors));
    }

    [Test]
    public void Gradient_scale_and_accumulation_add_up()
    {
        var config = TestModels.Small(false);
        var weights = TestModels.RandomWeights(config, 21);
        var batch = TestModels.Batch(config, 22);
        using var backend = new CpuBackend(DType.F64, threads: 2);
        using var model = TestModels.Create(backend, config, weights);
        var p = model.Parameters[LlamaTensorNames.LinearWeight(1, "down_proj")];
        model.ZeroGradients();
        model.ForwardBackward(batch, 0);
        double[] once = Read(backend, p.Gradient!);
        model.ForwardBackward(batch, 0, gradientScale: 0.5);
        Assert.That(Read(backend, p.Gradient!), Is.EqualTo(once.Select(g => g * 1.5).ToArray()).Within(1e-12));
        model.ZeroGradients();
        Assert.That(Read(backend, p.Gradient!), Is.All.EqualTo(0.0));
    }

    [Test]
    public void Training_step_is_bitwise_reproducible_across_runs_and_thread_counts()
    {
        var config = LlamaPresets.Tiny with { VocabSize = 256, NumHiddenLayers = 2 };
        var weights = TestModels.RandomWeights(config, 31);
        var batch = TestModels.Batch(config, 32, batch: 2, seqLen: 64);
        var lora = new LoraConfig { Dropout = 0.1, TargetModules = LoraConfig.ParseTargets("all-linear") };
        (double Loss, float[][] Grads) Run(int threads)
        {
            using var backend = new CpuBackend(DType.F32, threads);
            using var model = TestModels.Create(backend, config, weights, new LlamaModelOptions { Lora = lora, Seed = 3 });
            foreach (var b in model.TrainableParameters.Where(p => p.Name.Contains("lora_B", StringComparison.Ordinal)))
            {
                backend.Fill(b.Value, 0.01);
            }
            model.ZeroGradients();
            var loss = model.ForwardBackward(batch, 5);
            return (loss.Sum, [.. model.TrainableParameters.Select(p => p.Gradient!.HostSpan<float>().ToArray())]);
        }
        var one = Run(1);
        var two = Run(2);
        var again = Run(2);
        Assert.That(two.Loss, Is.EqualTo(one.Loss));
        Assert.That(two.Grads, Is.EqualTo(one.Grads));
        Assert.That(again.Grads, Is.EqualTo(two.Grads));
        Assert.That(one.Grads.SelectMany(g => g).Any(g => g != 0), Is.True);
    }

    [Test]
    public void Training_step_allocates_nothing_once_warmed_up()
    {
        // Measured on the calling thread, which runs the model's orchestration and its share of
        // every kernel (process-wide counters also see the test host's own threads).
        var config = LlamaPresets.Tiny with { VocabSize = 256 };
        var weights = TestModels.RandomWeights(config, 51);
        var batch = TestModels.Batch(config, 52, batch: 2, seqLen: 32);
        using var backend = new CpuBackend(DType.F32, threads: 2);
        using var model = TestModels.Create(backend, config, weights, new LlamaModelOptions { Lora = new LoraConfig() });
        model.ForwardBackward(batch, 0);
        model.Forward(batch);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int step = 1; step <= 3; step++)
        {
            model.ZeroGradients();
            model.ForwardBackward(batch, step);
            model.Forward(batch);
        }
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero, "bytes allocated by three warmed-up training steps");
    }

    [Test]
    public void Float32_agrees_with_float64()
    {
        var config = TestModels.Small(true);
        var weights = TestModels.RandomWeights(config, 41);
        var batch = TestModels.Batch(config, 42, batch: 2, seqLen: 9);
        using var b32 = new CpuBackend(DType.F32, threads: 2);
        using var b64 = new CpuBackend(DType.F64, threads: 2);
        using var m32 = TestModels.Create(b32, config, weights);
        using var m64 = TestModels.Create(b64, config, weights);
        m32.ZeroGradients();
        m64.ZeroGradients();
        double l32 = m32.ForwardBackward(batch, 0).Mean, l64 = m64.ForwardBackward(batch, 0).Mean;
        Assert.That(l32, Is.EqualTo(l64).Within(1e-5 * l64));
        foreach (var p in m64.TrainableParameters)
        {
            double[] g64 = Read(b64, p.Gradient!), g32 = Read(b32, m32.Parameters[p.Name].Gradient!);
            double scale = g64.Max(Math.Abs);
            Assert.That(g32, Is.EqualTo(g64).Within(1e-4 * scale + 1e-7), p.Name);
        }
    }

    [Test]
    public void Out_of_vocabulary_input_is_a_user_error_naming_the_position()
    {
        var config = TestModels.Small(false);
        using var backend = new CpuBackend(DType.F32, threads: 1);
        using var model = TestModels.Create(backend, config, TestModels.RandomWeights(config, 1));
        var batch = new TokenBatch(1, 3, [1, 99, 2]);
        var e = Assert.Throws<CudaFinetune.Errors.UserErrorException>(() => model.Forward(batch));
        Assert.That(e!.Message, Does.Contain("99").And.Contain("position 1"));
    }
}
