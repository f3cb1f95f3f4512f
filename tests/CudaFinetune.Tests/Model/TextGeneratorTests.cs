using CudaFinetune.Backends.Cpu;
using CudaFinetune.Model;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Model;

/// <summary>Generation with the key/value cache against the verified training forward.</summary>
[TestFixture]
public sealed class TextGeneratorTests
{
    [Test]
    public void Cached_decoding_gives_the_same_next_token_distribution_as_the_training_forward()
    {
        var config = TestModels.Small(false);
        using var backend = new CpuBackend(DType.F64, threads: 2);
        using var model = TestModels.Create(backend, config, TestModels.RandomWeights(config, 3),
            new LlamaModelOptions { Lora = new LoraConfig { Dropout = 0.3 } });
        int[] tokens = [3, 7, 1, 12, 5, 5, 9];
        var generator = new TextGenerator(model);
        float[] prefill = generator.LogitsAfter(tokens, tokens.Length);
        float[] oneByOne = generator.LogitsAfter(tokens, 1);
        float[] inThrees = generator.LogitsAfter(tokens, 3);
        Assert.That(oneByOne, Is.EqualTo(prefill).Within(1e-5));
        Assert.That(inThrees, Is.EqualTo(prefill).Within(1e-5));

        // The training forward's loss on "predict token t after the prefix" is −log softmax(logits)[t].
        for (int target = 0; target < config.VocabSize; target += 4)
        {
            int[] ids = [.. tokens, target];
            int[] labels = [.. Enumerable.Repeat(-100, tokens.Length), target];
            double loss = model.Forward(new TokenBatch(1, ids.Length, ids, labels)).Mean;
            double max = prefill.Max();
            double logSumExp = max + Math.Log(prefill.Sum(l => Math.Exp(l - max)));
            Assert.That(logSumExp - prefill[target], Is.EqualTo(loss).Within(1e-5), $"target {target}");
        }
    }

    [Test]
    public void Greedy_generation_is_deterministic_and_stops_at_eos()
    {
        var config = TestModels.Small(true);
        using var backend = new CpuBackend(DType.F32, threads: 2);
        using var model = TestModels.Create(backend, config, TestModels.RandomWeights(config, 4));
        var generator = new TextGenerator(model);
        var first = generator.Generate([1, 2, 3], new GenerationOptions { MaxNewTokens = 12 }, eosId: null);
        Assert.That(first, Has.Count.EqualTo(12));
        Assert.That(generator.Generate([1, 2, 3], new GenerationOptions { MaxNewTokens = 12 }, eosId: null), Is.EqualTo(first));
        var stopped = generator.Generate([1, 2, 3], new GenerationOptions { MaxNewTokens = 12 }, eosId: first[4]);
        Assert.That(stopped, Is.EqualTo(first.Take(first.ToList().IndexOf(first[4]) + 1)));
        var sampled = generator.Generate([1, 2, 3], new GenerationOptions { MaxNewTokens = 12, Temperature = 1.5, TopP = 0.9, Seed = 7 }, eosId: null);
        Assert.That(generator.Generate([1, 2, 3], new GenerationOptions { MaxNewTokens = 12, Temperature = 1.5, TopP = 0.9, Seed = 7 }, eosId: null), Is.EqualTo(sampled));
    }
}
