
namespace CudaFinetune.Model;

/// <summary>How a model is trained: LoRA adapters on a frozen base, or every weight (full fine-tuning).</summary>
public sealed record LlamaModelOptions
{
    /// <summary>LoRA settings; null trains every base weight.</summary>
    public LoraConfig? Lora { get; init; }

    /// <summary>Seeds the LoRA A initialisation and the dropout masks.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>
    /// Where the decoder layers' base weights really live when they are not whole on this device (ZeRO stage 3): the
    /// model asks for layer l before it uses it, forward and backward. Null: the weights are whole.
    /// </summary>
    public ILayerWeights? LayerWeights { get; init; }
}

/// <summary>Decoder-layer base weights held in shards: <see cref="Gather"/> makes layer l's weights whole in the tensors the model reads.</summary>
public interface ILayerWeights
{
    /// <summary>Brings layer <paramref name="layer"/>'s weights into place (a collective: every rank gathers the same layers in the same order).</summary>
    void Gather(int layer);
}
