using System.Buffers;
using System.Globalization;
using System.Text.Json;
using CudaFinetune.Errors;
using CudaFinetune.IO;

namespace CudaFinetune.Model;

/// <summary>
/// Reads and writes Hugging Face's <c>config.json</c> for Llama models. Uses JsonDocument and
/// Utf8JsonWriter rather than reflection-based serialization so the CLI stays NativeAOT-safe, and
/// so every key's type can be checked with a message that names the key. Reading accepts what
/// transformers writes (snake_case keys, eos_token_id as a number or a list, rope_scaling with
/// "rope_type" or the older "type", and transformers 5's "rope_parameters"/"dtype"); unknown keys
/// are ignored. Writing is deterministic: keys in alphabetical order as transformers sorts them,
/// two-space indentation, "\n" line ends.
/// </summary>
public static class LlamaConfigJson
{
    public const string Architecture = "LlamaForCausalLM";
    public const string ModelType = "llama";

    /// <summary>Reads a config.json file; <see cref="UserErrorException"/> if it is missing, malformed or not a Llama config.</summary>
    public static LlamaConfig Read(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new UserErrorException($"{path}: no such file; a model directory needs the config.json that describes the model", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserErrorException($"{path}: cannot read ({e.Message})", e);
        }
        return Parse(bytes, path);
    }

    /// <summary>Parses config.json text; <paramref name="source"/> names it in messages.</summary>
    public static LlamaConfig Parse(ReadOnlyMemory<byte> json, string source = "config.json")
    {
        using JsonDocument document = JsonFields.Parse(json, source, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var reader = JsonFields.Root(document, source);
        CheckArchitecture(reader, source);
        var defaults = new LlamaConfig();
        JsonFields? ropeParameters = reader.OptionalObject("rope_parameters");
        var config = new LlamaConfig
        {
            VocabSize = reader.OptionalInt("vocab_size") ?? defaults.VocabSize,
            HiddenSize = reader.OptionalInt("hidden_size") ?? defaults.HiddenSize,
            IntermediateSize = reader.OptionalInt("intermediate_size") ?? defaults.IntermediateSize,
            NumHiddenLayers = reader.OptionalInt("num_hidden_layers") ?? defaults.NumHiddenLayers,
            NumAttentionHeads = reader.OptionalInt("num_attention_heads") ?? defaults.NumAttentionHeads,
            NumKeyValueHeads = reader.OptionalInt("num_key_value_heads"),
            HeadDim = reader.OptionalInt("head_dim"),
            MaxPositionEmbeddings = reader.OptionalInt("max_position_embeddings") ?? defaults.MaxPositionEmbeddings,
            RmsNormEps = reader.OptionalNumber("rms_norm_eps") ?? defaults.RmsNormEps,
            RopeTheta = reader.OptionalNumber("rope_theta") ?? ropeParameters?.OptionalNumber("rope_theta") ?? defaults.RopeTheta,
            RopeScaling = ReadRopeScaling(reader.OptionalObject("rope_scaling") ?? ropeParameters),
            TieWordEmbeddings = reader.OptionalBool("tie_word_embeddings") ?? defaults.TieWordEmbeddings,
            InitializerRange = reader.OptionalNumber("initializer_range") ?? defaults.InitializerRange,
            BosTokenId = reader.Member("bos_token_id").Kind == JsonValueKind.Undefined ? defaults.BosTokenId : TokenId(reader.Member("bos_token_id")),
            EosTokenId = reader.Member("eos_token_id").Kind == JsonValueKind.Undefined ? defaults.EosTokenId : TokenId(reader.Member("eos_token_id")),
            HiddenAct = reader.OptionalString("hidden_act") ?? defaults.HiddenAct,
            AttentionBias = reader.OptionalBool("attention_bias") ?? defaults.AttentionBias,
            MlpBias = reader.OptionalBool("mlp_bias") ?? defaults.MlpBias,
            TorchDtype = reader.OptionalString("torch_dtype") ?? reader.OptionalString("dtype") ?? defaults.TorchDtype,
        };
        try
        {
            config.Validate();
        }
        catch (UserErrorException e)
        {
            throw new UserErrorException($"{source}: {e.Message}", e);
        }
        return config;
    }

    /// <summary>Writes <paramref name="config"/> to <paramref name="path"/> atomically.</summary>
    public static void Write(string path, LlamaConfig config)
    {
        byte[] bytes = Serialize(config);
        AtomicFile.Write(path, stream => stream.Write(bytes));
    }

    /// <summary>
    /// The config.json bytes. num_key_value_heads and head_dim are written resolved (never null),
    /// as transformers writes them, so other tools need not know the defaults.
    /// </summary>
    public static byte[] Serialize(LlamaConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, NewLine = "\n" }))
        {
            json.WriteStartObject();
            json.WriteStartArray("architectures");
            json.WriteStringValue(Architecture);
            json.WriteEndArray();
            json.WriteBoolean("attention_bias", config.AttentionBias);
            WriteNullable(json, "bos_token_id", config.BosTokenId);
            WriteNullable(json, "eos_token_id", config.EosTokenId);
            json.WriteNumber("head_dim", config.HeadSize);
            json.WriteString("hidden_act", config.HiddenAct);
            json.WriteNumber("hidden_size", config.HiddenSize);
            WriteFloat(json, "initializer_range", config.InitializerRange);
            json.WriteNumber("intermediate_size", config.IntermediateSize);
            json.WriteNumber("max_position_embeddings", config.MaxPositionEmbeddings);
            json.WriteBoolean("mlp_bias", config.MlpBias);
            json.WriteString("model_type", ModelType);
            json.WriteNumber("num_attention_heads", config.NumAttentionHeads);
            json.WriteNumber("num_hidden_layers", config.NumHiddenLayers);
            json.WriteNumber("num_key_value_heads", config.KeyValueHeads);
            WriteFloat(json, "rms_norm_eps", config.RmsNormEps);
            if (config.RopeScaling is { } scaling)
            {
                json.WriteStartObject("rope_scaling");
                WriteFloat(json, "factor", scaling.Factor);
                WriteFloat(json, "high_freq_factor", scaling.HighFreqFactor);
                WriteFloat(json, "low_freq_factor", scaling.LowFreqFactor);
                json.WriteNumber("original_max_position_embeddings", scaling.OriginalMaxPositionEmbeddings);
                json.WriteString("rope_type", scaling.RopeType);
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("rope_scaling");
            }
            WriteFloat(json, "rope_theta", config.RopeTheta);
            json.WriteBoolean("tie_word_embeddings", config.TieWordEmbeddings);
            json.WriteString("torch_dtype", config.TorchDtype);
            json.WriteNumber("vocab_size", config.VocabSize);
            json.WriteEndObject();
        }
        var bytes = new byte[buffer.WrittenCount + 1];
        buffer.WrittenSpan.CopyTo(bytes);
        bytes[^1] = (byte)'\n';
        return bytes;
    }

    /// <summary>
    /// A double spelled as Python's json module spells a float (32.0, 1e-05, 0.02), so that
    /// transformers sees floats where it checks for them (rope_scaling.factor) and the file reads
    /// like one transformers wrote. The shortest round-trip digits are kept, so reading gives the
    /// same double back.
    /// </summary>
    private static void WriteFloat(Utf8JsonWriter json, string key, double value)
    {
        if (!double.IsFinite(value))
        {
            throw new ArgumentException($"config.json cannot hold {key} = {value}", nameof(value));
        }
        string text = value.ToString("R", CultureInfo.InvariantCulture).Replace('E', 'e');
        if (!text.Contains('.', StringComparison.Ordinal) && !text.Contains('e', StringComparison.Ordinal))
        {
            text += ".0";
        }
        json.WritePropertyName(key);
        json.WriteRawValue(text);
    }

    private static void WriteNullable(Utf8JsonWriter json, string key, int? value)
    {
        if (value is { } v)
        {
            json.WriteNumber(key, v);
        }
        else
        {
            json.WriteNull(key);
        }
    }

    private static void CheckArchitecture(JsonFields reader, string source)
    {
        string? modelType = reader.OptionalString("model_type");
        List<string> architectures = reader.OptionalStringList("architectures") ?? [];
        if (modelType == ModelType || architectures.Contains(Architecture))
        {
            return;
        }
        string found = modelType is null ? "no model_type" : $"model_type '{modelType}'";
        if (architectures.Count > 0)
        {
            found += $" (architectures: {string.Join(", ", architectures)})";
        }
        throw new UserErrorException($"{source}: {found} is not supported; CudaFinetune supports Llama-family models (model_type 'llama', architecture {Architecture})");
    }

    /// <summary>rope_scaling (or rope_parameters); null when absent, null, or transformers' "default" (no scaling).</summary>
    private static RopeScaling? ReadRopeScaling(JsonFields? fields)
    {
        if (fields is not { } f)
        {
            return null;
        }
        string? type = f.OptionalString("rope_type") ?? f.OptionalString("type");
        if (type is null or "default")
        {
            return null;
        }
        var defaults = new RopeScaling();
        return new RopeScaling
        {
            RopeType = type,
            Factor = f.OptionalNumber("factor") ?? defaults.Factor,
            LowFreqFactor = f.OptionalNumber("low_freq_factor") ?? defaults.LowFreqFactor,
            HighFreqFactor = f.OptionalNumber("high_freq_factor") ?? defaults.HighFreqFactor,
            OriginalMaxPositionEmbeddings = f.OptionalInt("original_max_position_embeddings") ?? defaults.OriginalMaxPositionEmbeddings,
        };
    }

    /// <summary>A token id given as an integer or a list of integers (the first is taken); null for null or an empty list.</summary>
    private static int? TokenId(JsonFields value)
    {
        const string expected = "an integer or a list of integers";
        switch (value.Kind)
        {
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.Number:
                return value.Value.TryGetInt32(out int id) ? id : throw value.Wrong(expected);
            case JsonValueKind.Array:
                var ids = value.Value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int i) ? i : (int?)null).ToList();
                return ids.Contains(null) ? throw value.Wrong(expected) : ids.FirstOrDefault();
            default:
                throw value.Wrong(expected);
        }
    }
}
