using CudaFinetune.Backends.Cpu;
using CudaFinetune.Checkpoints;
using CudaFinetune.Errors;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Tensors;
using CudaFinetune.Tokenizers;
using CudaFinetune.Training;

namespace CudaFinetune.Hosting;

/// <summary>
/// Takes a run's trained weights out of a checkpoint (of any world size) into Hugging Face's formats: a PEFT adapter
/// (<c>adapter_model.safetensors</c> + <c>adapter_config.json</c>, which <c>PeftModel.from_pretrained</c> loads), or a
/// merged model directory (the base model with the adapter folded in, or the fully fine-tuned weights: config.json,
/// safetensors — sharded with an index when large — and the base model's tokenizer files), which transformers and
/// vLLM load as any Llama.
/// </summary>
public static class CheckpointExport
{
    /// <summary>Writes the LoRA adapter of the checkpoint at <paramref name="path"/> (a checkpoint, or a run's newest valid one) as PEFT's layout.</summary>
    public static string ToPeft(string path, string outDir)
    {
        var (checkpoint, options) = ResumePlanner.OpenNewestSaved(path, "export", "export --checkpoint", verify: true);
        var lora = options.LoraSettings() ?? throw new UserErrorException($"'{checkpoint.Directory}' is a full fine-tuning checkpoint (peft none): it has no adapter; export it with --format merged");
        using var backend = new CpuBackend();
        var pieces = checkpoint.Manifest.Tensors.Where(t => t.Group == CheckpointFormat.ModelGroup).DistinctBy(t => t.Name)
            .Select(t => CheckpointPiece.Whole(t.Name, t.Group, backend.Allocate(t.DType, new Shape([.. t.Shape.Select(d => checked((int)d))])))).ToList();
        try
        {
            checkpoint.Load(pieces, backend, checkpoint.Manifest.Tensors.Select(t => (t.Group, t.Name)));
            PeftAdapterDirectory.Save(outDir, lora, [.. pieces.Select(p => (p.Name, p.Data))], options.Model);
        }
        finally
        {
            pieces.ForEach(p => p.Data.Dispose());
        }
        return checkpoint.Directory;
    }

    /// <summary>
    /// Writes a full model directory: <paramref name="baseModel"/> (default: the one the run trained) with the checkpoint's
    /// adapter merged in, or with its fully fine-tuned weights, as <paramref name="dtype"/> (F32 or BF16).
    /// </summary>
    public static string ToMerged(string path, string outDir, string? baseModel = null, DType dtype = DType.BF16, long maxShardBytes = HfModelDirectory.DefaultMaxShardBytes)
    {
        var (checkpoint, options) = ResumePlanner.OpenNewestSaved(path, "export", "export --checkpoint", verify: true);
        string modelDir = baseModel ?? options.Model ?? throw new UserErrorException($"'{checkpoint.Directory}' records no base model; pass --base-model DIR");
        if (!Directory.Exists(modelDir))
        {
            throw new UserErrorException($"the base model '{modelDir}' the run trained is not there; pass --base-model DIR (the same model, moved)");
        }
        if (Fingerprints.Model(modelDir) != checkpoint.Manifest.Fingerprints.Model)
        {
            throw new UserErrorException($"'{modelDir}' is not the model '{checkpoint.Directory}' was trained on (its config or weight files differ)");
        }
        using var backend = new CpuBackend();
        var (config, weights) = HfModelDirectory.Load(modelDir, backend);
        var lora = options.LoraSettings();
        using var model = new LlamaModel(backend, config, weights, new LlamaModelOptions { Lora = lora, Seed = options.Seed });
        var pieces = model.TrainableParameters.Select(p => CheckpointPiece.Whole(p.Name, CheckpointFormat.ModelGroup, p.FullPrecision)).ToList();
        checkpoint.Load(pieces, backend, checkpoint.Manifest.Tensors.Select(t => (t.Group, t.Name)));
        model.RefreshWorkingWeights();
        if (lora is not null)
        {
            LoraMerge.IntoBaseWeights(model);
        }
        HfModelDirectory.Save(outDir, config, model.Parameters, dtype, backend, maxShardBytes);
        TokenizerCatalog.CopyHfFiles(modelDir, outDir);
        return checkpoint.Directory;
    }
}
