using System.Text.Encodings.Web;
using System.Text.Json;
using CudaFinetune.Errors;
using CudaFinetune.IO;

namespace CudaFinetune.Tokenizers;

/// <summary>
/// The tokenizers CudaFinetune knows by name, and the record in a model directory that says which
/// one the model uses.
/// </summary>
/// <remarks>
/// The record is Hugging Face's <c>tokenizer_config.json</c> with one extra key,
/// <c>"cudafinetune_tokenizer"</c>, naming the tokenizer in this catalog. The other keys are the
/// ones transformers writes for the same tokenizer (<c>tokenizer_class</c>, the special tokens,
/// <c>model_max_length</c>), so the directory reads naturally to Hugging Face tooling; the
/// vocabulary files themselves (vocab.json, merges.txt) are not written. A directory whose
/// tokenizer_config.json lacks the key (an ordinary Hugging Face download) uses its own tokenizer files
/// through <see cref="HfTokenizer"/> (tokenizer.json or tokenizer.model); without them only pretokenized data can be trained.
/// </remarks>
public static class TokenizerCatalog
{
    public const string RecordFileName = "tokenizer_config.json";

    /// <summary>The key in tokenizer_config.json that names the tokenizer in this catalog.</summary>
    public const string RecordKey = "cudafinetune_tokenizer";

    private const string ModelConfigFileName = "config.json";

    private sealed record Entry(string Name, string HfClass, int DefaultMaxLength, Func<ITokenizer> Create);

    private static readonly Entry[] Entries =
    [
        new(Gpt2Tokenizer.TokenizerName, "GPT2Tokenizer", 1024, static () => new Gpt2Tokenizer()),
    ];

    /// <summary>Names <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = Array.ConvertAll(Entries, e => e.Name);

    /// <summary>A tokenizer by name; <see cref="UserErrorException"/> listing the known names when it is unknown.</summary>
    public static ITokenizer Create(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Find(name)?.Create()
            ?? throw new UserErrorException($"unknown tokenizer '{name}'; known tokenizers: {string.Join(", ", Names)}");
    }

    /// <summary>
    /// The tokenizer a model directory records, or null when it records none CudaFinetune can use
    /// (no tokenizer_config.json, or one without the <c>cudafinetune_tokenizer</c> key). A record
    /// that is malformed or names an unknown tokenizer is a <see cref="UserErrorException"/>.
    /// </summary>
    public static ITokenizer? TryLoadForModel(string modelDir)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        string path = Path.Combine(modelDir, RecordFileName);
        byte[] bytes;
        try
        {
            bytes = HfTokenizer.ReadFile(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return HfTokenizer.Exists(modelDir) ? HfTokenizer.Load(modelDir) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserErrorException($"{path}: cannot read ({e.Message})", e);
        }
        var error = JsonFields.FileErrors(path);
        using JsonDocument document = JsonFields.Parse(bytes, problem => error($"{problem}; fix or delete the file"),
            new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var record = JsonFields.Root(document, error).Member(RecordKey);
        if (!record.IsGiven)
        {
            return HfTokenizer.Exists(modelDir) ? HfTokenizer.Load(modelDir) : null; // an ordinary Hugging Face directory
        }
        string name = record.AsString($"a string naming a tokenizer ({string.Join(", ", Names)})", _ => true);
        return Find(name)?.Create()
            ?? throw new UserErrorException($"{path}: records tokenizer '{name}', which this version of CudaFinetune does not know; known tokenizers: {string.Join(", ", Names)}");
    }

    /// <summary>Files of a Hugging Face model directory that describe its tokenizer and generation defaults.</summary>
    public static IReadOnlyList<string> HfFiles { get; } =
        [HfTokenizer.TokenizerJsonFileName, RecordFileName, "special_tokens_map.json", HfTokenizer.SentencePieceFileName, "generation_config.json"];

    /// <summary>
    /// Gives a written model directory its tokenizer: the record for a catalog tokenizer, else a copy of the Hugging Face
    /// tokenizer files of <paramref name="sourceModelDir"/> (the model it was trained from).
    /// </summary>
    public static void SaveForModel(string modelDir, ITokenizer tokenizer, string sourceModelDir)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (Find(tokenizer.Name) is not null)
        {
            WriteRecord(modelDir, tokenizer);
            return;
        }
        CopyHfFiles(sourceModelDir, modelDir);
    }

    /// <summary>Copies the tokenizer files <paramref name="from"/> has into <paramref name="to"/>.</summary>
    public static void CopyHfFiles(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in HfFiles.Where(f => File.Exists(Path.Combine(from, f))))
        {
            File.Copy(Path.Combine(from, file), Path.Combine(to, file), overwrite: true);
        }
    }

    /// <summary>
    /// Writes the record (tokenizer_config.json) into <paramref name="modelDir"/>, creating the
    /// directory, atomically. The bytes depend only on the tokenizer and
    /// <paramref name="modelMaxLength"/>; when that is null it is the directory's config.json
    /// <c>max_position_embeddings</c> if there is one, else the tokenizer's own default (1024 for GPT-2).
    /// </summary>
    public static void WriteRecord(string modelDir, ITokenizer tokenizer, int? modelMaxLength = null)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        ArgumentNullException.ThrowIfNull(tokenizer);
        Entry entry = Find(tokenizer.Name)
            ?? throw new ArgumentException($"tokenizer '{tokenizer.Name}' is not in the catalog ({string.Join(", ", Names)}), so no record can name it", nameof(tokenizer));
        if (modelMaxLength is <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(modelMaxLength), modelMaxLength, "model_max_length must be positive");
        }
        Directory.CreateDirectory(modelDir);
        int maxLength = modelMaxLength ?? ReadMaxPositions(modelDir) ?? entry.DefaultMaxLength;
        string eos = tokenizer.Decode([tokenizer.EosId]);
        string? bos = tokenizer.BosId is int bosId ? tokenizer.Decode([bosId]) : null;
        AtomicFile.Write(Path.Combine(modelDir, RecordFileName), stream =>
        {
            using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, IndentSize = 2, NewLine = "\n", Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
            json.WriteStartObject();
            json.WriteBoolean("add_bos_token", bos is not null);
            json.WriteBoolean("add_eos_token", false);
            if (bos is not null)
            {
                json.WriteString("bos_token", bos);
            }
            json.WriteString(RecordKey, entry.Name);
            json.WriteString("eos_token", eos);
            json.WriteNumber("model_max_length", maxLength);
            json.WriteString("tokenizer_class", entry.HfClass);
            json.WriteEndObject();
            json.Flush();
            stream.WriteByte((byte)'\n');
        });
    }

    private static Entry? Find(string name) => Array.Find(Entries, e => string.Equals(e.Name, name, StringComparison.Ordinal));

    /// <summary>max_position_embeddings from the directory's config.json, when it has a readable one.</summary>
    private static int? ReadMaxPositions(string modelDir)
    {
        string path = Path.Combine(modelDir, ModelConfigFileName);
        if (!File.Exists(path))
        {
            return null;
        }
        byte[] bytes = HfTokenizer.ReadFile(path);
        try
        {
            using JsonDocument document = JsonFields.Parse(bytes, path);
            return JsonFields.Root(document, path).OptionalInt("max_position_embeddings", 1);
        }
        catch (UserErrorException)
        {
            // A broken config.json is reported by whoever loads the model; the record falls back to the default.
            return null;
        }
    }
}
