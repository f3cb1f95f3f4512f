using CudaFinetune.Backends;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Tokenizers;

namespace CudaFinetune.HuggingFace;

/// <summary>Loads a model directory, optionally with a PEFT LoRA adapter on top, and its tokenizer record, for eval and generation.</summary>
public static class ModelLoader
{
    public static (LlamaModel Model, ITokenizer? Tokenizer) Load(string modelDir, string? adapterDir, IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        var lora = adapterDir is null ? null : PeftAdapterDirectory.ReadConfig(adapterDir);
        var (config, weights) = HfModelDirectory.Load(modelDir, backend);
        var model = new LlamaModel(backend, config, weights, new LlamaModelOptions { Lora = lora });
        try
        {
            if (adapterDir is not null)
            {
                PeftAdapterDirectory.LoadWeights(adapterDir, model);
            }
            return (model, TokenizerCatalog.TryLoadForModel(modelDir));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
