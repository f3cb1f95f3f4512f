using CudaFinetune.Backends.Cpu;
using CudaFinetune.Config;
using CudaFinetune.Data;
using CudaFinetune.Model;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Model;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;
using static CudaFinetune.Tests.Support.HostTensors;

namespace CudaFinetune.Tests.Training;

/// <summary>
/// Full fine-tuning of a tiny model, step by step, against a straightforward double-precision
/// reference that shares no code with the engine: its loss is <see cref="ReferenceLlama"/>, its
/// gradients central finite differences of that loss, and its optimizer, schedule and clipping
/// plain scalar code written from PyTorch's and transformers' definitions.
/// </summary>
[TestFixture]
public sealed class TrainerReferenceTests
{
    private static LlamaConfig Config() => new()
    {
        VocabSize = 11,
        HiddenSize = 8,
        IntermediateSize = 12,
        NumHiddenLayers = 2,
        NumAttentionHeads = 2,
        NumKeyValueHeads = 1,
        MaxPositionEmbeddings = 32,
        RmsNormEps = 1e-5,
        RopeTheta = 100,
        TieWordEmbeddings = false,
    };

    [Test]
    public void Full_fine_tuning_matches_the_reference_step_by_step()
    {
        var config = Config();
        var weights = TestModels.RandomWeights(config, 5);
        // Every row holds every token id, so no gradient is exactly zero (finite differences of an
        // exactly-zero gradient are noise that AdamW would turn into a step).
        var rng = new Random(6);
        var examples = Enumerable.Range(0, 6).Select(_ =>
        {
            int[] ids = [.. Enumerable.Range(0, 11).OrderBy(_ => rng.Next()), rng.Next(11)];
            return new TokenizedExample(ids, ids);
        }).ToList();
        var options = new FinetuneOptions
        {
            Peft = "none", BatchSize = 1, ContextLength = 12, Batching = BatchingStrategy.Packing, Shuffle = false,
            GradientAccumulationSteps = 2, NumEpochs = 2, MaxSteps = 4, Lr = 0.02, WeightDecay = 0.01,
            Beta1 = 0.9, Beta2 = 0.95, Epsilon = 1e-4, Scheduler = SchedulerKind.Cosine, WarmupSteps = 1,
            GradientClipping = 0.5, ValidationFraction = 0,
        };
        var plan = BatchPlan.Create(examples, options.Batching, options.BatchSize, options.ContextLength, padId: 0);
        Assert.That(plan.Count, Is.EqualTo(6));

        using var backend = new CpuBackend(DType.F64, threads: 2);
        using var model = TestModels.Create(backend, config, weights);
        using var trainer = new Trainer(model, plan, null, options);
        var losses = new List<double>();
        trainer.Progress += e =>
        {
            if (e is StepCompleted s)
            {
                losses.Add(s.Loss);
            }
        };
        trainer.Run();

        var expectedLosses = Reference(config, weights, plan, options);
        Assert.That(losses, Has.Count.EqualTo(4));
        Assert.That(losses, Is.EqualTo(expectedLosses).Within(1e-9));
        foreach (var (name, _) in LlamaTensorNames.BaseWeights(config))
        {
            Assert.That(Read(backend, model.Parameters[name].Value), Is.EqualTo(weights[name]).Within(1e-8), name);
        }
    }

    /// <summary>Trains <paramref name="w"/> in place the reference way; returns each step's loss.</summary>
    private static List<double> Reference(LlamaConfig config, Dictionary<string, double[]> w, BatchPlan plan, FinetuneOptions o)
    {
        var names = LlamaTensorNames.BaseWeights(config).Select(x => x.Name).ToArray();
        var m = names.ToDictionary(n => n, n => new double[w[n].Length]);
        var v = names.ToDictionary(n => n, n => new double[w[n].Length]);
        var losses = new List<double>();
        int stepsPerEpoch = (plan.Count + o.GradientAccumulationSteps - 1) / o.GradientAccumulationSteps;
        long total = Math.Min(o.MaxSteps, stepsPerEpoch * o.NumEpochs);
        int t = 0;
        for (int epoch = 0; epoch < o.NumEpochs && t < total; epoch++)
        {
            for (int first = 0; first < plan.Count && t < total; first += o.GradientAccumulationSteps)
            {
                var batches = Enumerable.Range(first, Math.Min(o.GradientAccumulationSteps, plan.Count - first)).Select(i => plan[i]).ToArray();
                var grads = names.ToDictionary(n => n, n => new double[w[n].Length]);
                double lossSum = 0;
                foreach (var batch in batches)
                {
                    double Loss() => ReferenceLlama.Loss(config, w, batch.BatchSize, batch.SeqLen, batch.InputIds, batch.Labels);
                    lossSum += Loss();
                    foreach (string n in names)
                    {
                        for (int i = 0; i < w[n].Length; i++)
                        {
                            double saved = w[n][i];
                            w[n][i] = saved + 1e-6;
                            double plus = Loss();
                            w[n][i] = saved - 1e-6;
                            double minus = Loss();
                            w[n][i] = saved;
                            grads[n][i] += (plus - minus) / 2e-6 / o.GradientAccumulationSteps;
                        }
                    }
                }
                losses.Add(lossSum / batches.Length);
                double norm = Math.Sqrt(names.Sum(n => grads[n].Sum(g => g * g)));
                double clip = Math.Min(1.0, o.GradientClipping / (norm + 1e-6));
                // transformers' get_cosine_schedule_with_warmup, evaluated at the steps already taken.
                double lr = t < o.WarmupSteps
                    ? o.Lr * t / o.WarmupSteps
                    : o.Lr * Math.Max(0, 0.5 * (1 + Math.Cos(Math.PI * (t - o.WarmupSteps) / (double)(total - o.WarmupSteps))));
                t++;
                foreach (string n in names)
                {
                    for (int i = 0; i < w[n].Length; i++)
                    {
                        double g = grads[n][i] * clip;
                        w[n][i] *= 1 - lr * o.WeightDecay;
                        m[n][i] = o.Beta1 * m[n][i] + (1 - o.Beta1) * g;
                        v[n][i] = o.Beta2 * v[n][i] + (1 - o.Beta2) * g * g;
                        double denom = Math.Sqrt(v[n][i]) / Math.Sqrt(1 - Math.Pow(o.Beta2, t)) + o.Epsilon;
                        w[n][i] -= lr / (1 - Math.Pow(o.Beta1, t)) * m[n][i] / denom;
                    }
                }
            }
        }
        return losses;
    }
}
