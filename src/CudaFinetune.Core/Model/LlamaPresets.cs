using CudaFinetune.Errors;

namespace CudaFinetune.Model;

/// <summary>Named model shapes for <c>init-model --preset</c>: small random models for demos, tests and benchmarks.</summary>
public static class LlamaPresets
{
    /// <summary>A Llama-3.2-shaped miniature (GQA, tied embeddings, llama3 RoPE scaling) that trains in seconds on a CPU.</summary>
    public static LlamaConfig Tiny { get; } = new()
    {
        VocabSize = 1024,
        HiddenSize = 128,
        IntermediateSize = 352,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        MaxPositionEmbeddings = 1024,
        RmsNormEps = 1e-5,
        RopeTheta = 500000.0,
        RopeScaling = new RopeScaling { Factor = 32.0, LowFreqFactor = 1.0, HighFreqFactor = 4.0, OriginalMaxPositionEmbeddings = 256 },
        TieWordEmbeddings = true,
        BosTokenId = 1,
        EosTokenId = 2,
    };

    /// <summary>The benchmark model: vocab 8192, hidden 256, intermediate 768, 4 layers, 8 heads, 4 KV heads, untied head.</summary>
    public static LlamaConfig BenchTiny { get; } = new()
    {
        VocabSize = 8192,
        HiddenSize = 256,
        IntermediateSize = 768,
        NumHiddenLayers = 4,
        NumAttentionHeads = 8,
        NumKeyValueHeads = 4,
        MaxPositionEmbeddings = 2048,
        RmsNormEps = 1e-5,
        RopeTheta = 10000.0,
        TieWordEmbeddings = false,
        BosTokenId = 1,
        EosTokenId = 2,
    };

    public static IReadOnlyList<string> Names { get; } = ["tiny", "bench-tiny"];

    public static LlamaConfig Get(string name) => name switch
    {
        "tiny" => Tiny,
        "bench-tiny" => BenchTiny,
        _ => throw new UserErrorException($"unknown preset '{name}'; choose one of: {string.Join(", ", Names)}"),
    };
}
