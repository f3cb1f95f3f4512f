using CudaFinetune.Backends.Cpu;
using CudaFinetune.Model;
using CudaFinetune.Tensors;
using NUnit.Framework;

namespace CudaFinetune.Tests.Model;

public sealed class LlamaInitializerTests
{
    private static readonly LlamaConfig Config = new()
    {
        VocabSize = 512,
        HiddenSize = 64,
        IntermediateSize = 96,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 1,
        InitializerRange = 0.05,
    };

    private static float[][] Initialize(ulong seed, int threads)
    {
        using var backend = new CpuBackend(threads: threads);
        using ParameterSet weights = LlamaWeights.Allocate(backend, Config);
        LlamaInitializer.Initialize(backend, weights, Config, seed);
        return [.. weights.All.Select(p => p.Value.HostSpan<float>().ToArray())];
    }

    [Test]
    public void Allocate_gives_zeroed_frozen_weights_in_compute_dtype_in_BaseWeights_order()
    {
        using var backend = new CpuBackend(DType.F64, threads: 1);
        using ParameterSet weights = LlamaWeights.Allocate(backend, Config);
        Assert.That(weights.All.Select(p => p.Name), Is.EqualTo(LlamaTensorNames.BaseWeights(Config).Select(w => w.Name)));
        Assert.That(weights.All.Select(p => p.Value.DType), Is.All.EqualTo(DType.F64));
        Assert.That(weights.All.Any(p => p.Trainable), Is.False);
        Assert.That(weights.All.All(p => p.Value.HostSpan<double>().ToArray().All(v => v == 0)), Is.True);
        Assert.That(LlamaWeights.CountParameters(weights), Is.EqualTo(LlamaTensorNames.BaseWeights(Config).Sum(w => new Shape(w.Shape).ElementCount)));
    }

    [Test]
    public void Norms_are_one_and_matrices_are_normal_with_the_initializer_range()
    {
        using var backend = new CpuBackend(threads: 1);
        using ParameterSet weights = LlamaWeights.Allocate(backend, Config);
        LlamaInitializer.Initialize(backend, weights, Config, seed: 3);
        foreach (Parameter p in weights.All)
        {
            float[] v = p.Value.HostSpan<float>().ToArray();
            if (p.Value.Shape.Rank == 1)
            {
                Assert.That(v, Is.All.EqualTo(1f), p.Name);
                continue;
            }
            double mean = v.Average(x => (double)x);
            double std = Math.Sqrt(v.Average(x => (x - mean) * (x - mean)));
            double tolerance = 5 * 0.05 / Math.Sqrt(v.Length);
            Assert.That(mean, Is.EqualTo(0).Within(tolerance), p.Name);
            Assert.That(std, Is.EqualTo(0.05).Within(0.05 * 5 / Math.Sqrt(v.Length / 2.0)), p.Name);
            Assert.That(v.Max(Math.Abs), Is.LessThan(0.05 * 7), p.Name);
        }
    }

    [Test]
    public void Same_seed_gives_same_values_on_any_thread_count_and_seeds_differ()
    {
        float[][] one = Initialize(11, threads: 1);
        float[][] two = Initialize(11, threads: 2);
        float[][] other = Initialize(12, threads: 1);
        Assert.That(two, Is.EqualTo(one));
        Assert.That(other[0], Is.Not.EqualTo(one[0]));
        Assert.That(one[2][..100], Is.Not.EqualTo(one[3][..100]), "different tensors draw different streams");
    }
}
