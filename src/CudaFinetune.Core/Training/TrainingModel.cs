using CudaFinetune.Backends;
using CudaFinetune.Config;
using CudaFinetune.Distributed;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Model;

namespace CudaFinetune.Training;

/// <summary>The model a run trains: the base model's weights, LoRA adapters as the options ask, and a starting adapter's weights.</summary>
internal static class TrainingModel
{
    /// <summary>The model of <see cref="FinetuneOptions.Model"/> on <paramref name="backend"/>, with LoRA adapters when asked.</summary>
    /// <param name="shardLayers">makes the sharded layer weights for the config (ZeRO stage 3), or null for whole weights</param>
    /// <param name="startFromAdapter">load <see cref="FinetuneOptions.FromPeft"/>'s weights (not when resuming: the checkpoint has them)</param>
    public static LlamaConfig Load(FinetuneOptions options, IBackend backend, Func<LlamaConfig, ShardedLayerWeights>? shardLayers, bool startFromAdapter, out LlamaModel model)
    {
        ShardedLayerWeights? layerWeights = null;
        ParameterSet? weights = null;
        LlamaModel? made = null;
        try
        {
            (var config, weights) = HfModelDirectory.Load(options.Model!, backend, shardLayers is null ? null : c => layerWeights = shardLayers(c));
            options.CheckFits(config);
            made = new LlamaModel(backend, config, weights, new LlamaModelOptions { Lora = options.LoraSettings(), Seed = options.Seed, LayerWeights = layerWeights });
            if (startFromAdapter && options.FromPeft is { } adapter)
            {
                PeftAdapterDirectory.LoadWeights(adapter, made);
            }
            HfModelDirectory.LoadMasters(options.Model!, made); // full fine-tuning under mixed precision: masters from the file, not from bf16
            model = made;
            return config;
        }
        catch
        {
            if (made is not null)
            {
                made.Dispose(); // owns the weights
            }
            else
            {
                weights?.Dispose();
            }
            layerWeights?.Dispose();
            throw;
        }
    }

    /// <summary>With <see cref="FinetuneOptions.FromPeft"/>: the adapter's rank, alpha and target modules replace the options'.</summary>
    public static FinetuneOptions WithAdapterSettings(FinetuneOptions options)
    {
        if (options.FromPeft is not { } dir)
        {
            return options;
        }
        var adapter = PeftAdapterDirectory.ReadConfig(dir);
        return options with { LoraR = adapter.Rank, LoraAlpha = adapter.Alpha, LoraTargets = string.Join(",", adapter.TargetModules) };
    }
}
