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
        JsonDocument document;
        try
        {
            document = IO.StrictJson.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new UserErrorException($"{source}: not valid JSON ({e.Message})", e);
        }
        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new UserErrorException($"{source}: expected a JSON object");
            }
            var reader = new Fields(root, source);
            CheckArchitecture(reader, source);
            var defaults = new LlamaConfig();
            JsonElement? ropeParameters = reader.Object("rope_parameters");
            var ropeFields = ropeParameters is { } rp ? new Fields(rp, source, "rope_parameters.") : null;
            var config = new LlamaConfig
            {
                VocabSize = reader.Int("vocab_size") ?? defaults.VocabSize,
                HiddenSize = reader.Int("hidden_size") ?? defaults.HiddenSize,
                IntermediateSize = reader.Int("intermediate_size") ?? defaults.IntermediateSize,
                NumHiddenLayers = reader.Int("num_hidden_layers") ?? defaults.NumHiddenLayers,
                NumAttentionHeads = reader.Int("num_attention_heads") ?? defaults.NumAttentionHeads,
                NumKeyValueHeads = reader.Int("num_key_value_heads"),
                HeadDim = reader.Int("head_dim"),
                MaxPositionEmbeddings = reader.Int("max_position_embeddings") ?? defaults.MaxPositionEmbeddings,
                RmsNormEps = reader.Double("rms_norm_eps") ?? defaults.RmsNormEps,
                RopeTheta = reader.Double("rope_theta") ?? ropeFields?.Double("rope_theta") ?? defaults.RopeTheta,
                RopeScaling = ReadRopeScaling(reader.Object("rope_scaling") is { } rs ? new Fields(rs, source, "rope_scaling.") : ropeFields),
                TieWordEmbeddings = reader.Bool("tie_word_embeddings") ?? defaults.TieWordEmbeddings,
                InitializerRange = reader.Double("initializer_range") ?? defaults.InitializerRange,
                BosTokenId = reader.Has("bos_token_id") ? reader.TokenId("bos_token_id") : defaults.BosTokenId,
                EosTokenId = reader.Has("eos_token_id") ? reader.TokenId("eos_token_id") : defaults.EosTokenId,
                HiddenAct = reader.String("hidden_act") ?? defaults.HiddenAct,
                AttentionBias = reader.Bool("attention_bias") ?? defaults.AttentionBias,
                MlpBias = reader.Bool("mlp_bias") ?? defaults.MlpBias,
                TorchDtype = reader.String("torch_dtype") ?? reader.String("dtype") ?? defaults.TorchDtype,
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

    private static void CheckArchitecture(Fields reader, string source)
    {
        string? modelType = reader.String("model_type");
        List<string> architectures = reader.StringList("architectures");
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
    private static RopeScaling? ReadRopeScaling(Fields? fields)
    {
        if (fields is null)
        {
            return null;
        }
        string? type = fields.String("rope_type") ?? fields.String("type");
        if (type is null or "default")
        {
            return null;
        }
        var defaults = new RopeScaling();
        return new RopeScaling
        {
            RopeType = type,
            Factor = fields.Double("factor") ?? defaults.Factor,
            LowFreqFactor = fields.Double("low_freq_factor") ?? defaults.LowFreqFactor,
            HighFreqFactor = fields.Double("high_freq_factor") ?? defaults.HighFreqFactor,
            OriginalMaxPositionEmbeddings = fields.Int("original_max_position_embeddings") ?? defaults.OriginalMaxPositionEmbeddings,
        };
    }

    /// <summary>Typed access to one JSON object's keys; absent or null keys read as null, wrong types throw naming the key.</summary>
    private sealed class Fields(JsonElement obj, string source, string prefix = "")
    {
        public bool Has(string key) => obj.TryGetProperty(key, out _);

        public int? Int(string key)
        {
            if (!TryGet(key, out JsonElement v))
            {
                return null;
            }
            return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Wrong(key, "an integer", v);
        }

        public double? Double(string key)
        {
            if (!TryGet(key, out JsonElement v))
            {
                return null;
            }
            return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d) ? d : throw Wrong(key, "a number", v);
        }

        public bool? Bool(string key)
        {
            if (!TryGet(key, out JsonElement v))
            {
                return null;
            }
            return v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw Wrong(key, "true or false", v),
            };
        }

        public string? String(string key)
        {
            if (!TryGet(key, out JsonElement v))
            {
                return null;
            }
            return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Wrong(key, "a string", v);
        }

        public JsonElement? Object(string key)
        {
            if (!TryGet(key, out JsonElement v))
            {
                return null;
            }
            return v.ValueKind == JsonValueKind.Object ? v : throw Wrong(key, "an object", v);
        }

        public List<string> StringList(string key)
        {
            if (!TryGet(key, out JsonElement v))
            {
                return [];
            }
            if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
            {
                throw Wrong(key, "a list of strings", v);
            }
            return [.. v.EnumerateArray().Select(e => e.GetString()!)];
        }

        /// <summary>A token id given as an integer or a list of integers (the first is taken); null for null or an empty list.</summary>
        public int? TokenId(string key)
        {
            if (!TryGet(key, out JsonElement v))
            {
                return null;
            }
            if (v.ValueKind == JsonValueKind.Array)
            {
                if (v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out _)))
                {
                    throw Wrong(key, "an integer or a list of integers", v);
                }
                return v.GetArrayLength() == 0 ? null : v[0].GetInt32();
            }
            return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Wrong(key, "an integer or a list of integers", v);
        }

        private bool TryGet(string key, out JsonElement value) =>
            obj.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null;

        private UserErrorException Wrong(string key, string expected, JsonElement found) =>
            new($"{source}: '{prefix}{key}' must be {expected}, found {Describe(found)}");

        private static string Describe(JsonElement value)
        {
            string text = value.GetRawText();
            return text.Length <= 40 ? text : text[..40] + "…";
        }
    }
}
