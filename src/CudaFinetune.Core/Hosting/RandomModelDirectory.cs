using CudaFinetune.Backends.Cpu;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Tensors;
using CudaFinetune.Tokenizers;

namespace CudaFinetune.Hosting;

/// <summary>
/// A deterministic random Llama model of a preset shape, written in Hugging Face layout (config.json, model.safetensors
/// and, for presets that name one, the tokenizer record), so demos, tests and benchmarks have a model without a download.
/// The same preset and seed always give the same bytes. What <c>CudaFinetune init-model</c> runs.
/// </summary>
public static class RandomModelDirectory
{
    /// <summary>Writes the model into <paramref name="directory"/> (replacing its config.json and model.safetensors); returns its parameter count.</summary>
    /// <param name="presetName">one of <see cref="LlamaPresets.Names"/></param>
    /// <param name="fileDType">F32 or BF16 in the file</param>
    public static long Write(string presetName, ulong seed, string directory, DType fileDType)
    {
        ArgumentNullException.ThrowIfNull(presetName);
        LlamaConfig config = LlamaPresets.Get(presetName);
        using var backend = new CpuBackend();
        using ParameterSet weights = LlamaWeights.Allocate(backend, config);
        LlamaInitializer.Initialize(backend, weights, config, seed);
        HfModelDirectory.Save(directory, config, weights, fileDType);
        if (LlamaPresets.TokenizerName(presetName) is { } tokenizerName)
        {
            TokenizerCatalog.WriteRecord(directory, TokenizerCatalog.Create(tokenizerName));
        }
        return LlamaWeights.CountParameters(weights);
    }
}
