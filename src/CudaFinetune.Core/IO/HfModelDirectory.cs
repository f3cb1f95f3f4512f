using CudaFinetune.Backends;
using CudaFinetune.Checkpoints;
using CudaFinetune.Errors;
using CudaFinetune.IO.Safetensors;
using CudaFinetune.Model;
using CudaFinetune.Tensors;

namespace CudaFinetune.IO;

/// <summary>
/// A model directory in Hugging Face layout: <c>config.json</c> plus a single
/// <c>model.safetensors</c>, the layout <c>save_pretrained</c> writes for small models and that
/// transformers, PEFT and llama.cpp's converters read. Loading checks the weights against the
/// config completely (every tensor present, every shape right, nothing left over that the model
/// would silently ignore) so a mismatched checkpoint fails with one clear message up front.
/// </summary>
public static class HfModelDirectory
{
    public const string ConfigFileName = "config.json";
    public const string WeightsFileName = "model.safetensors";
    public const string ShardIndexFileName = "model.safetensors.index.json";

    /// <summary>
    /// Writes config.json (torch_dtype set from <paramref name="fileDType"/>) and model.safetensors,
    /// creating the directory. The weights must be host tensors (the CPU backend's); each file is
    /// replaced atomically.
    /// </summary>
    /// <param name="fileDType">F32 or BF16.</param>
    /// <param name="backend">Copies out weights that are not in host memory.</param>
    public static void Save(string directory, LlamaConfig config, ParameterSet weights, DType fileDType, IBackend? backend = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        string torchDtype = fileDType switch
        {
            DType.F32 => "float32",
            DType.BF16 => "bfloat16",
            _ => throw new ArgumentException($"model files are written as F32 or BF16, not {fileDType}", nameof(fileDType)),
        };
        var tensors = new List<(string, Tensor)>();
        foreach (var (name, shape) in LlamaTensorNames.BaseWeights(config))
        {
            if (!weights.TryGet(name, out Parameter parameter) || parameter.Value.Shape != new Shape(shape))
            {
                throw new ArgumentException($"the weights do not match the config at '{name}' (expected shape {new Shape(shape)})", nameof(weights));
            }
            tensors.Add((name, parameter.FullPrecision));
        }
        Directory.CreateDirectory(directory);
        // Weights first, config last: a directory with a config.json always has its weights.
        SafetensorsWriter.Write(Path.Combine(directory, WeightsFileName), tensors, fileDType, backend: backend);
        LlamaConfigJson.Write(Path.Combine(directory, ConfigFileName), config with { TorchDtype = torchDtype });
    }

    /// <summary>
    /// Reads config.json and model.safetensors into weights allocated on <paramref name="backend"/>
    /// in its compute dtype. Throws <see cref="UserErrorException"/> for anything wrong with the directory.
    /// </summary>
    /// <summary>
    /// Fills the master copies of <paramref name="model"/>'s trained base weights (mixed precision, full fine-tuning) from the
    /// directory's file at full precision, rather than from the rounded working weights, and rounds them again into those.
    /// </summary>
    public static void LoadMasters(string directory, LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var masters = model.TrainableParameters.Where(p => p.Master is not null && !p.Name.Contains(".lora_", StringComparison.Ordinal)).ToList();
        if (masters.Count == 0)
        {
            return;
        }
        using var reader = new SafetensorsReader(Path.Combine(directory, WeightsFileName));
        foreach (var p in masters)
        {
            ReadInto(reader, p.Name, p.Master!, model.Backend);
        }
        model.RefreshWorkingWeights();
    }

    /// <summary>The directory's model config, or null when it has none or it does not parse (<see cref="Load"/> then says why).</summary>
    public static LlamaConfig? TryReadConfig(string directory)
    {
        try
        {
            string path = Path.Combine(directory, ConfigFileName);
            return File.Exists(path) ? LlamaConfigJson.Read(path) : null;
        }
        catch (UserErrorException)
        {
            return null;
        }
    }

    /// <param name="placed">
    /// decoder-layer weights held in shards (ZeRO stage 3): made for the config, they give the views the model reads
    /// and load their own shards from the file; null: every weight whole
    /// </param>
    public static (LlamaConfig Config, ParameterSet Weights) Load(string directory, IBackend backend, Func<LlamaConfig, IShardedWeights>? placed = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(backend);
        if (!Directory.Exists(directory))
        {
            throw new UserErrorException($"model directory '{directory}' does not exist; pass a directory holding config.json and model.safetensors (e.g. one written by `CudaFinetune init-model`)");
        }
        string configPath = Path.Combine(directory, ConfigFileName);
        if (!File.Exists(configPath))
        {
            throw new UserErrorException($"'{directory}' has no {ConfigFileName}; a model directory needs config.json and model.safetensors in Hugging Face layout");
        }
        string weightsPath = Path.Combine(directory, WeightsFileName);
        if (!File.Exists(weightsPath))
        {
            throw new UserErrorException(File.Exists(Path.Combine(directory, ShardIndexFileName))
                ? $"'{directory}' holds a sharded checkpoint ({ShardIndexFileName}); sharded checkpoints are not supported yet: save the model as a single model.safetensors (e.g. save_pretrained with a larger max_shard_size)"
                : $"'{directory}' has no {WeightsFileName}; only safetensors weights are read (convert pytorch_model.bin with save_pretrained(safe_serialization=True))");
        }
        LlamaConfig config = LlamaConfigJson.Read(configPath);
        using var reader = new SafetensorsReader(weightsPath);
        CheckTensorNames(reader, config, weightsPath);
        var sharded = placed?.Invoke(config);
        ParameterSet weights = LlamaWeights.Allocate(backend, config, sharded is null ? null : sharded.View);
        try
        {
            sharded?.Load(reader, backend);
            foreach (Parameter parameter in weights.All.Where(p => sharded?.View(p.Name) is null))
            {
                SafetensorsTensorInfo info = reader.GetTensor(parameter.Name);
                if (info.Shape != parameter.Value.Shape)
                {
                    throw new UserErrorException($"{weightsPath}: tensor '{parameter.Name}' has shape {info.Shape}, but config.json needs {parameter.Value.Shape}; the weights and config.json do not belong together");
                }
                if (!ElementConvert.IsFloating(info.DType))
                {
                    throw new UserErrorException($"{weightsPath}: tensor '{parameter.Name}' holds {info.DType}; model weights must be F32, BF16, F16 or F64");
                }
                ReadParameter(reader, backend, parameter);
            }
        }
        catch
        {
            weights.Dispose();
            throw;
        }
        return (config, weights);
    }

    /// <summary>Every expected tensor is present, and nothing is there that this model would silently drop.</summary>
    private static void CheckTensorNames(SafetensorsReader reader, LlamaConfig config, string path)
    {
        var expected = LlamaTensorNames.BaseWeights(config).Select(w => w.Name).ToList();
        var missing = expected.Where(name => !reader.TryGetTensor(name, out _)).ToList();
        if (missing.Count > 0)
        {
            string hint = missing.Contains(LlamaTensorNames.LmHead) && missing.Count == 1
                ? "; if the output layer shares the embedding, config.json should say \"tie_word_embeddings\": true"
                : "; the weights and config.json do not belong together";
            throw new UserErrorException($"{path}: missing {missing.Count} tensor(s) the config needs, first '{missing[0]}' (shape {new Shape(LlamaTensorNames.BaseWeights(config).First(w => w.Name == missing[0]).Shape)}){hint}");
        }
        var known = new HashSet<string>(expected, StringComparer.Ordinal);
        var unexpected = reader.Tensors.Select(t => t.Name).Where(name => !known.Contains(name) && !IsIgnorable(name, config)).ToList();
        if (unexpected.Count == 0)
        {
            return;
        }
        string list = string.Join(", ", unexpected.Take(5)) + (unexpected.Count > 5 ? $", … ({unexpected.Count} in all)" : "");
        if (unexpected.Any(n => n.EndsWith(".bias", StringComparison.Ordinal)))
        {
            throw new UserErrorException($"{path}: has bias tensors ({list}); Llama models have none, so this checkpoint is of an architecture CudaFinetune does not support");
        }
        throw new UserErrorException($"{path}: has tensors a Llama model with this config.json does not use ({list}); the checkpoint is of another architecture or does not match config.json");
    }

    /// <summary>lm_head.weight beside tied embeddings (some exporters write the shared tensor twice) and RoPE's precomputed inv_freq buffers (older Llama checkpoints).</summary>
    private static bool IsIgnorable(string name, LlamaConfig config) =>
        (config.TieWordEmbeddings && name == LlamaTensorNames.LmHead)
        || name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    private static void ReadParameter(SafetensorsReader reader, IBackend backend, Parameter parameter)
        => ReadInto(reader, parameter.Name, parameter.Value, backend);

    /// <summary>Reads tensor <paramref name="name"/> into <paramref name="value"/>, staged through host memory when it lives on a device.</summary>
    internal static unsafe void ReadInto(SafetensorsReader reader, string name, Tensor value, IBackend backend)
    {
        if (value.Storage is HostStorage)
        {
            reader.ReadInto(name, value);
            return;
        }
        using var staging = new Tensor(new HostStorage(value.DType, value.ElementCount), value.DType, value.Shape);
        reader.ReadInto(name, staging);
        TensorBytes.CopyIn(backend, new ReadOnlySpan<byte>(staging.HostAddress, checked((int)TensorBytes.Length(staging))), value, 0);
    }
}
