using CudaFinetune.Backends;
using CudaFinetune.Checkpoints;
using CudaFinetune.Errors;
using CudaFinetune.HuggingFace.Safetensors;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Tensors;

namespace CudaFinetune.HuggingFace;

/// <summary>
/// A model directory in Hugging Face layout: <c>config.json</c> plus <c>model.safetensors</c> or shards
/// with <c>model.safetensors.index.json</c> (<see cref="SafetensorsSet"/>), the layouts <c>save_pretrained</c> writes
/// and that transformers, PEFT, vLLM and llama.cpp's converters read; tensors may be F32, BF16, F16 or F64 and are
/// converted to the backend's dtype as they are copied out of the memory-mapped files. Loading checks the weights against the
/// config completely (every tensor present, every shape right, nothing left over that the model
/// would silently ignore) so a mismatched checkpoint fails with one clear message up front.
/// </summary>
public static class HfModelDirectory
{
    public const string ConfigFileName = "config.json";
    public const string WeightsFileName = SafetensorsSet.SingleFileName;
    public const string ShardIndexFileName = SafetensorsSet.IndexFileName;

    /// <summary>
    /// Writes config.json (torch_dtype set from <paramref name="fileDType"/>) and the weights, creating the directory: one
    /// model.safetensors, or — when they exceed <paramref name="maxShardBytes"/> — shards
    /// <c>model-00001-of-0000N.safetensors</c> with <c>model.safetensors.index.json</c>, as save_pretrained names them.
    /// Each file is replaced atomically; weights not in host memory are copied out through <paramref name="backend"/>.
    /// </summary>
    /// <param name="fileDType">F32 or BF16.</param>
    /// <param name="maxShardBytes">bytes per shard at most (a larger tensor gets a shard of its own); save_pretrained's default is 5 GB</param>
    public static void Save(string directory, LlamaConfig config, ParameterSet weights, DType fileDType, IBackend? backend = null, long maxShardBytes = DefaultMaxShardBytes)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        string torchDtype = fileDType switch
        {
            DType.F32 => "float32",
            DType.BF16 => "bfloat16",
            _ => throw new ArgumentException($"model files are written as F32 or BF16, not {fileDType}", nameof(fileDType)),
        };
        var tensors = new List<(string Name, Tensor Tensor)>();
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
        var shards = Shards(tensors, fileDType.SizeInBytes(), maxShardBytes);
        if (shards.Count == 1)
        {
            SafetensorsWriter.Write(Path.Combine(directory, WeightsFileName), tensors, fileDType, backend: backend);
            File.Delete(Path.Combine(directory, ShardIndexFileName));
        }
        else
        {
            var weightMap = new List<(string Name, string File)>();
            for (int i = 0; i < shards.Count; i++)
            {
                string file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
                SafetensorsWriter.Write(Path.Combine(directory, file), shards[i], fileDType, backend: backend);
                weightMap.AddRange(shards[i].Select(t => (t.Name, file)));
            }
            WriteIndex(Path.Combine(directory, ShardIndexFileName), tensors.Sum(t => t.Tensor.ElementCount * fileDType.SizeInBytes()), weightMap);
            File.Delete(Path.Combine(directory, WeightsFileName));
        }
        LlamaConfigJson.Write(Path.Combine(directory, ConfigFileName), config with { TorchDtype = torchDtype });
    }

    /// <summary>save_pretrained's default max_shard_size ("5GB").</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    /// <summary>The tensors cut, in order, into runs of at most <paramref name="maxBytes"/> (a larger tensor alone).</summary>
    private static List<List<(string Name, Tensor Tensor)>> Shards(List<(string Name, Tensor Tensor)> tensors, int elementBytes, long maxBytes)
    {
        var shards = new List<List<(string, Tensor)>> { new() };
        long bytes = 0;
        foreach (var t in tensors)
        {
            long size = t.Tensor.ElementCount * elementBytes;
            if (shards[^1].Count > 0 && bytes + size > maxBytes)
            {
                shards.Add([]);
                bytes = 0;
            }
            shards[^1].Add(t);
            bytes += size;
        }
        return shards;
    }

    private static void WriteIndex(string path, long totalSize, List<(string Name, string File)> weightMap)
    {
        AtomicFile.Write(path, stream =>
        {
            using var json = new System.Text.Json.Utf8JsonWriter(stream, new System.Text.Json.JsonWriterOptions { Indented = true });
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", totalSize);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var (name, file) in weightMap.OrderBy(w => w.Name, StringComparer.Ordinal))
            {
                json.WriteString(name, file);
            }
            json.WriteEndObject();
            json.WriteEndObject();
        });
    }

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
        using var reader = SafetensorsSet.Open(directory);
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

    /// <summary>
    /// Reads config.json and the weights into tensors allocated on <paramref name="backend"/> in its compute dtype.
    /// Throws <see cref="UserErrorException"/> for anything wrong with the directory, naming the tensor, file and shapes.
    /// </summary>
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
        LlamaConfig config = LlamaConfigJson.Read(configPath);
        using var reader = SafetensorsSet.Open(directory);
        CheckTensorNames(reader, config, reader.Description);
        var sharded = placed?.Invoke(config);
        ParameterSet weights = LlamaWeights.Allocate(backend, config, sharded is null ? null : sharded.View);
        try
        {
            sharded?.Load(reader, backend);
            foreach (Parameter parameter in weights.All.Where(p => sharded?.View(p.Name) is null))
            {
                CheckTensor(reader, parameter.Name, parameter.Value.Shape);
                ReadInto(reader, parameter.Name, parameter.Value, backend);
            }
        }
        catch
        {
            weights.Dispose();
            throw;
        }
        return (config, weights);
    }

    /// <summary>The tensor has the shape the config needs and a floating dtype; else a message naming both shapes and the file.</summary>
    public static void CheckTensor(SafetensorsSet reader, string name, Shape expected)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var info = reader.GetTensor(name);
        if (info.Shape != expected)
        {
            throw new UserErrorException($"{reader.FileOf(name)}: tensor '{name}' has shape {info.Shape}, but config.json needs {expected}; the weights and config.json do not belong together");
        }
        if (!ElementConvert.IsFloating(info.DType))
        {
            throw new UserErrorException($"{reader.FileOf(name)}: tensor '{name}' holds {info.DType}; model weights must be F32, BF16, F16 or F64");
        }
    }

    /// <summary>Every expected tensor is present, and nothing is there that this model would silently drop.</summary>
    private static void CheckTensorNames(SafetensorsSet reader, LlamaConfig config, string path)
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

    /// <summary>Reads tensor <paramref name="name"/> into <paramref name="value"/>, staged through host memory when it lives on a device.</summary>
    internal static void ReadInto(SafetensorsSet reader, string name, Tensor value, IBackend backend) => Stage(value, backend, host => reader.ReadInto(name, host));

    /// <inheritdoc cref="ReadInto(SafetensorsSet, string, Tensor, IBackend)"/>
    internal static void ReadInto(SafetensorsReader reader, string name, Tensor value, IBackend backend) => Stage(value, backend, host => reader.ReadInto(name, host));

    private static unsafe void Stage(Tensor value, IBackend backend, Action<Tensor> readHost)
    {
        if (value.Storage is HostStorage)
        {
            readHost(value);
            return;
        }
        using var staging = new Tensor(new HostStorage(value.DType, value.ElementCount), value.DType, value.Shape);
        readHost(staging);
        TensorBytes.CopyIn(backend, new ReadOnlySpan<byte>(staging.HostAddress, checked((int)TensorBytes.Length(staging))), value, 0);
    }
}
