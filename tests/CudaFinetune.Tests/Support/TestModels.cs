using CudaFinetune.Backends;
using CudaFinetune.Model;
using CudaFinetune.Tensors;

namespace CudaFinetune.Tests.Support;

/// <summary>Small models with reproducible random weights for model-level tests.</summary>
internal static class TestModels
{
    /// <summary>
    /// Head size 4 with theta 100 and llama3 scaling (original context 16, low 1, high 4), so one
    /// frequency is in the smoothed band and one in the scaled band: both branches are exercised.
    /// </summary>
    public static LlamaConfig Small(bool tied) => new()
    {
        VocabSize = 13,
        HiddenSize = 16,
        IntermediateSize = 24,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        MaxPositionEmbeddings = 64,
        RmsNormEps = 1e-5,
        RopeTheta = 100,
        RopeScaling = new RopeScaling { Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 16 },
        TieWordEmbeddings = tied,
    };

    /// <summary>Random base weights: linear and embedding entries uniform in ±0.5, norm weights 1 ± 0.2.</summary>
    public static Dictionary<string, double[]> RandomWeights(LlamaConfig config, int seed)
    {
        var rng = new Random(seed);
        var weights = new Dictionary<string, double[]>();
        foreach (var (name, shape) in LlamaTensorNames.BaseWeights(config))
        {
            int count = shape.Aggregate(1, (a, b) => a * b);
            weights[name] = shape.Length == 1
                ? [.. Enumerable.Range(0, count).Select(_ => 1 + (rng.NextDouble() - 0.5) * 0.4)]
                : HostTensors.Random(rng, count, 0.5);
        }
        return weights;
    }

    public static ParameterSet Upload(IBackend backend, LlamaConfig config, IReadOnlyDictionary<string, double[]> weights)
    {
        var set = new ParameterSet();
        foreach (var (name, shape) in LlamaTensorNames.BaseWeights(config))
        {
            set.Add(new Parameter(name, HostTensors.FromDoubles(backend, weights[name], shape)));
        }
        return set;
    }

    public static LlamaModel Create(IBackend backend, LlamaConfig config, IReadOnlyDictionary<string, double[]> weights, LlamaModelOptions? options = null)
        => new(backend, config, Upload(backend, config, weights), options);

    /// <summary>A batch of 2 × 5 with random ids and a few ignored labels.</summary>
    public static TokenBatch Batch(LlamaConfig config, int seed, int batch = 2, int seqLen = 5)
    {
        var rng = new Random(seed);
        int[] ids = [.. Enumerable.Range(0, batch * seqLen).Select(_ => rng.Next(config.VocabSize))];
        int[] labels = [.. ids];
        labels[2] = -100;
        labels[^1] = -100;
        return new TokenBatch(batch, seqLen, ids, labels);
    }
}
