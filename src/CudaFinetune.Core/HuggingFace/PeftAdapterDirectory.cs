using System.Text.Json;
using CudaFinetune.Errors;
using CudaFinetune.HuggingFace.Safetensors;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Tensors;

namespace CudaFinetune.HuggingFace;

/// <summary>
/// A LoRA adapter in PEFT's layout: <c>adapter_config.json</c> (peft_type LORA, r, lora_alpha,
/// lora_dropout, target_modules) and <c>adapter_model.safetensors</c> with PEFT's tensor names
/// (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight …), which are the names the
/// model's adapter parameters already carry. <c>PeftModel.from_pretrained</c> reads it.
/// </summary>
public static class PeftAdapterDirectory
{
    public const string ConfigFileName = "adapter_config.json";
    public const string WeightsFileName = "adapter_model.safetensors";

    /// <summary>Writes the model's LoRA adapters (F32) and their configuration into <paramref name="directory"/>.</summary>
    public static void Save(string directory, LlamaModel model, string? baseModelPath)
    {
        ArgumentNullException.ThrowIfNull(model);
        var lora = model.Lora ?? throw new InvalidOperationException("the model has no LoRA adapters to save");
        var tensors = model.Parameters.All.Where(p => p.Name.Contains(".lora_", StringComparison.Ordinal)).Select(p => (p.Name, p.FullPrecision)).ToList();
        Save(directory, lora, tensors, baseModelPath, model.Backend);
    }

    /// <summary>Writes adapter tensors (PEFT names) as F32 and <paramref name="lora"/> as adapter_config.json into <paramref name="directory"/>.</summary>
    /// <param name="backend">copies out tensors that are not in host memory</param>
    public static void Save(string directory, LoraConfig lora, IReadOnlyList<(string Name, Tensor Tensor)> tensors, string? baseModelPath, Backends.IBackend? backend = null)
    {
        ArgumentNullException.ThrowIfNull(lora);
        ArgumentNullException.ThrowIfNull(tensors);
        Directory.CreateDirectory(directory);
        SafetensorsWriter.Write(Path.Combine(directory, WeightsFileName), tensors, DType.F32, backend: backend);
        AtomicFile.Write(Path.Combine(directory, ConfigFileName), stream =>
        {
            using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            json.WriteStartObject();
            json.WriteString("peft_type", "LORA");
            json.WriteString("task_type", "CAUSAL_LM");
            if (baseModelPath is null)
            {
                json.WriteNull("base_model_name_or_path");
            }
            else
            {
                json.WriteString("base_model_name_or_path", baseModelPath);
            }
            json.WriteNumber("r", lora.Rank);
            json.WriteNumber("lora_alpha", lora.Alpha);
            json.WriteNumber("lora_dropout", lora.Dropout);
            json.WriteStartArray("target_modules");
            foreach (string module in lora.TargetModules)
            {
                json.WriteStringValue(module);
            }
            json.WriteEndArray();
            json.WriteString("bias", "none");
            json.WriteBoolean("fan_in_fan_out", false);
            json.WriteBoolean("inference_mode", true);
            json.WriteEndObject();
        });
    }

    /// <summary>
    /// Reads adapter_config.json into a <see cref="LoraConfig"/>, after checking the directory holds both of an
    /// adapter's files, so a wrong path fails before a model is loaded.
    /// </summary>
    /// <param name="flag">the flag the user gave the directory with (--adapter, --from-peft), which messages name; null: none</param>
    public static LoraConfig ReadConfig(string directory, string? flag = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        CheckFiles(directory, flag);
        string path = Path.Combine(directory, ConfigFileName);
        var error = JsonFields.FileErrors($"{Where(directory, flag)}: {ConfigFileName}");
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw error($"cannot be read ({e.Message})");
        }
        using var doc = JsonFields.Parse(bytes, error);
        var root = JsonFields.Root(doc, error);
        string peftType = root.OptionalString("peft_type") ?? "";
        if (!string.Equals(peftType, "LORA", StringComparison.OrdinalIgnoreCase))
        {
            throw new UserErrorException($"{Where(directory, flag)}: {ConfigFileName} has peft_type '{peftType}'; only LORA adapters are supported");
        }
        var modules = root.Member("target_modules");
        IReadOnlyList<string> targets = modules.Kind == JsonValueKind.String
            ? LoraConfig.ParseTargets(modules.AsString())
            : modules.Kind == JsonValueKind.Array ? modules.AsStringList() : throw modules.Wrong("a list of module names or a comma-separated string");
        var config = new LoraConfig
        {
            Rank = root.Int("r"),
            Alpha = root.Number("lora_alpha"),
            Dropout = root.OptionalNumber("lora_dropout") ?? 0,
            TargetModules = targets,
        };
        try
        {
            config.Validate();
        }
        catch (UserErrorException e)
        {
            throw error(e.Message);
        }
        return config;
    }

    /// <summary>Copies the adapter weights into a model built with <see cref="ReadConfig"/>'s settings, checking every tensor.</summary>
    /// <param name="flag">as for <see cref="ReadConfig"/></param>
    public static void LoadWeights(string directory, LlamaModel model, string? flag = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(model);
        CheckFiles(directory, flag);
        string path = Path.Combine(directory, WeightsFileName);
        using var reader = new SafetensorsReader(path);
        foreach (var p in model.Parameters.All.Where(p => p.Name.Contains(".lora_", StringComparison.Ordinal)))
        {
            if (!reader.TryGetTensor(p.Name, out var info))
            {
                throw new UserErrorException($"{path} has no tensor '{p.Name}': the adapter was made for another model or other target modules");
            }
            if (info.Shape != p.Value.Shape)
            {
                throw new UserErrorException($"{path}: '{p.Name}' has shape {info.Shape}, the model needs {p.Value.Shape}");
            }
            HfModelDirectory.ReadInto(reader, p.Name, p.FullPrecision, model.Backend);
        }
        model.RefreshWorkingWeights();
    }

    /// <summary>The directory exists and holds adapter_config.json and adapter_model.safetensors; else one message saying what to pass.</summary>
    private static void CheckFiles(string directory, string? flag)
    {
        if (MissingFile(directory) is { } problem)
        {
            throw new UserErrorException(
                $"{Where(directory, flag)}: {problem}; give the directory a LoRA fine-tune wrote (OUTPUT_DIR/adapter, or 'export --format peft'), or one PEFT's save_pretrained wrote, holding {ConfigFileName} and {WeightsFileName}");
        }
    }

    private static string? MissingFile(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return File.Exists(directory) ? "a file, not a directory" : "no such directory";
        }
        string runAdapter = Path.Combine(directory, "adapter");
        if (!File.Exists(Path.Combine(directory, ConfigFileName)) && File.Exists(Path.Combine(runAdapter, ConfigFileName)))
        {
            return $"no {ConfigFileName} there; it looks like a run's output directory, whose adapter is '{runAdapter}'";
        }
        foreach (string file in new[] { ConfigFileName, WeightsFileName })
        {
            if (!File.Exists(Path.Combine(directory, file)))
            {
                return $"no {file} there";
            }
        }
        return null;
    }

    /// <summary>"--from-peft 'dir'" when the flag is known, else "adapter directory 'dir'".</summary>
    private static string Where(string directory, string? flag) => $"{flag ?? "adapter directory"} '{directory}'";
}
