using CudaFinetune.Errors;

namespace CudaFinetune.Model;

/// <summary>
/// The architecture of a Llama-family model, named and defaulted as Hugging Face's
/// <c>LlamaConfig</c> (config.json) names and defaults them.
/// </summary>
public sealed record LlamaConfig
{
    public int VocabSize { get; init; } = 32000;
    public int HiddenSize { get; init; } = 4096;
    public int IntermediateSize { get; init; } = 11008;
    public int NumHiddenLayers { get; init; } = 32;
    public int NumAttentionHeads { get; init; } = 32;

    /// <summary>Key/value heads for grouped-query attention; null means equal to the attention heads.</summary>
    public int? NumKeyValueHeads { get; init; }

    /// <summary>Per-head size; null means hidden size / attention heads.</summary>
    public int? HeadDim { get; init; }

    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    public double InitializerRange { get; init; } = 0.02;
    public int? BosTokenId { get; init; } = 1;
    public int? EosTokenId { get; init; } = 2;
    public string HiddenAct { get; init; } = "silu";
    public bool AttentionBias { get; init; }
    public bool MlpBias { get; init; }

    /// <summary>The dtype the weights were saved in (config.json's torch_dtype), e.g. "float32" or "bfloat16".</summary>
    public string TorchDtype { get; init; } = "float32";

    public int KeyValueHeads => NumKeyValueHeads ?? NumAttentionHeads;

    public int HeadSize => HeadDim ?? HiddenSize / NumAttentionHeads;

    /// <summary>Width of the q projection's output (attention heads × head size).</summary>
    public int QueryWidth => NumAttentionHeads * HeadSize;

    /// <summary>Width of the k and v projections' outputs.</summary>
    public int KeyValueWidth => KeyValueHeads * HeadSize;

    /// <summary>Throws a <see cref="UserErrorException"/> naming the first inconsistency.</summary>
    public void Validate()
    {
        static void Positive(string name, long value)
        {
            if (value <= 0)
            {
                throw new UserErrorException($"model config: {name} must be positive, got {value}");
            }
        }
        Positive("vocab_size", VocabSize);
        Positive("hidden_size", HiddenSize);
        Positive("intermediate_size", IntermediateSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("num_key_value_heads", KeyValueHeads);
        Positive("head_dim", HeadSize);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        if (HeadDim is null && HiddenSize % NumAttentionHeads != 0)
        {
            throw new UserErrorException($"model config: hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}; set head_dim");
        }
        if (NumAttentionHeads % KeyValueHeads != 0)
        {
            throw new UserErrorException($"model config: num_attention_heads {NumAttentionHeads} is not a multiple of num_key_value_heads {KeyValueHeads}");
        }
        // The q projection's width must fit in an int; the k/v width is no larger, as kv heads divide the heads.
        if ((long)NumAttentionHeads * HeadSize > int.MaxValue)
        {
            throw new UserErrorException($"model config: num_attention_heads {NumAttentionHeads} × head size {HeadSize} is too large (at most {int.MaxValue})");
        }
        if (HeadSize % 2 != 0)
        {
            throw new UserErrorException($"model config: head size {HeadSize} must be even for rotary embeddings");
        }
        if (!(RmsNormEps > 0) || !(RopeTheta > 0))
        {
            throw new UserErrorException($"model config: rms_norm_eps ({RmsNormEps}) and rope_theta ({RopeTheta}) must be positive");
        }
        if (HiddenAct is not ("silu" or "swish"))
        {
            throw new UserErrorException($"model config: hidden_act '{HiddenAct}' is not supported; Llama models use 'silu'");
        }
        if (AttentionBias || MlpBias)
        {
            throw new UserErrorException("model config: attention_bias and mlp_bias are not supported yet; Llama models have no biases");
        }
        RopeScaling?.Validate();
    }
}

/// <summary>config.json's <c>rope_scaling</c>. Only the Llama 3.1/3.2 "llama3" type is supported.</summary>
public sealed record RopeScaling
{
    public string RopeType { get; init; } = "llama3";
    public double Factor { get; init; } = 8.0;
    public double LowFreqFactor { get; init; } = 1.0;
    public double HighFreqFactor { get; init; } = 4.0;
    public int OriginalMaxPositionEmbeddings { get; init; } = 8192;

    public void Validate()
    {
        if (RopeType != "llama3")
        {
            throw new UserErrorException($"model config: rope_scaling type '{RopeType}' is not supported yet; supported: llama3 (or no rope_scaling)");
        }
        if (!(Factor > 0) || !(LowFreqFactor > 0) || !(HighFreqFactor > LowFreqFactor) || OriginalMaxPositionEmbeddings <= 0)
        {
            throw new UserErrorException($"model config: rope_scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0; got {this}");
        }
    }
}
