using CudaFinetune.Errors;

namespace CudaFinetune.Model;

/// <summary>Named model shapes for <c>init-model --preset</c>: small random models for demos, tests and benchmarks.</summary>
public static class LlamaPresets
{
    /// <summary>
    /// A Llama-3.2-shaped miniature (GQA, tied embeddings, llama3 RoPE scaling) that trains in seconds
    /// on a CPU, with GPT-2's vocabulary so the demo can use a real BPE tokenizer.
    /// </summary>
    public static LlamaConfig Tiny { get; } = new()
    {
        VocabSize = 50257,
        // ≈ 1/√hidden rather than transformers' 0.02, so a random model this small passes signal
        // through its layers and its tied head can express confident predictions (at 0.02 the
        // largest reachable logit is about 2.6 and no adapter can lower the loss below ~8).
        InitializerRange = 0.15,
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
        BosTokenId = null,
        EosTokenId = 50256,
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

    /// <summary>
    /// The shape of Llama-3.2-1B (hidden 2048, 16 layers, 32 heads, 8 KV heads, intermediate 8192, vocab 128256, tied
    /// embeddings, llama3 RoPE scaling) with random weights: the GPU speed comparison's model. 1.24 B parameters.
    /// </summary>
    public static LlamaConfig Llama32OneBShape { get; } = new()
    {
        VocabSize = 128256,
        HiddenSize = 2048,
        IntermediateSize = 8192,
        NumHiddenLayers = 16,
        NumAttentionHeads = 32,
        NumKeyValueHeads = 8,
        MaxPositionEmbeddings = 131072,
        RmsNormEps = 1e-5,
        RopeTheta = 500000.0,
        RopeScaling = new RopeScaling { Factor = 32.0, LowFreqFactor = 1.0, HighFreqFactor = 4.0, OriginalMaxPositionEmbeddings = 8192 },
        TieWordEmbeddings = true,
        BosTokenId = 128000,
        EosTokenId = 128001,
    };

    public static IReadOnlyList<string> Names { get; } = ["tiny", "bench-tiny", "llama-3.2-1b-shape"];

    /// <summary>The tokenizer a preset's model directory records (null: pretokenized data only).</summary>
    public static string? TokenizerName(string name) => name == "tiny" ? "gpt2" : null;

    public static LlamaConfig Get(string name) => name switch
    {
        "tiny" => Tiny,
        "bench-tiny" => BenchTiny,
        "llama-3.2-1b-shape" => Llama32OneBShape,
        _ => throw new UserErrorException($"unknown preset '{name}'; choose one of: {string.Join(", ", Names)}"),
    };
}
