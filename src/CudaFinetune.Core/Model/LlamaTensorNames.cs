namespace CudaFinetune.Model;

/// <summary>Hugging Face's tensor names for <c>LlamaForCausalLM</c> weights.</summary>
public static class LlamaTensorNames
{
    public const string Embedding = "model.embed_tokens.weight";
    public const string FinalNorm = "model.norm.weight";
    public const string LmHead = "lm_head.weight";

    /// <summary>The seven linear layers of a decoder layer, in the module names LoRA targets use.</summary>
    public static IReadOnlyList<string> LinearModules { get; } = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    public static string LayerPrefix(int layer) => $"model.layers.{layer}.";

    /// <summary>The full module path of a linear layer, e.g. model.layers.0.self_attn.q_proj.</summary>
    public static string LinearModule(int layer, string module) => LayerPrefix(layer) + module switch
    {
        "q_proj" or "k_proj" or "v_proj" or "o_proj" => "self_attn." + module,
        "gate_proj" or "up_proj" or "down_proj" => "mlp." + module,
        _ => throw new ArgumentException($"not a Llama linear module: {module}", nameof(module)),
    };

    public static string LinearWeight(int layer, string module) => LinearModule(layer, module) + ".weight";

    public static string InputNorm(int layer) => LayerPrefix(layer) + "input_layernorm.weight";

    public static string PostAttentionNorm(int layer) => LayerPrefix(layer) + "post_attention_layernorm.weight";

    /// <summary>Shape [out, in] of a linear module's weight.</summary>
    public static (int Out, int In) LinearShape(LlamaConfig config, string module) => module switch
    {
        "q_proj" => (config.QueryWidth, config.HiddenSize),
        "k_proj" or "v_proj" => (config.KeyValueWidth, config.HiddenSize),
        "o_proj" => (config.HiddenSize, config.QueryWidth),
        "gate_proj" or "up_proj" => (config.IntermediateSize, config.HiddenSize),
        "down_proj" => (config.HiddenSize, config.IntermediateSize),
        _ => throw new ArgumentException($"not a Llama linear module: {module}", nameof(module)),
    };

    /// <summary>Every base weight the model has, with its shape, in a fixed order.</summary>
    public static IEnumerable<(string Name, int[] Shape)> BaseWeights(LlamaConfig config)
    {
        yield return (Embedding, [config.VocabSize, config.HiddenSize]);
        for (int layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            yield return (InputNorm(layer), [config.HiddenSize]);
            foreach (string module in LinearModules)
            {
                var (o, i) = LinearShape(config, module);
                yield return (LinearWeight(layer, module), [o, i]);
            }
            yield return (PostAttentionNorm(layer), [config.HiddenSize]);
        }
        yield return (FinalNorm, [config.HiddenSize]);
        if (!config.TieWordEmbeddings)
        {
            yield return (LmHead, [config.VocabSize, config.HiddenSize]);
        }
    }
}
