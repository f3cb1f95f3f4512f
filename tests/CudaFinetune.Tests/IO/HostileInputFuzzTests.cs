using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.HuggingFace.Safetensors;
using CudaFinetune.Model;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;
using static CudaFinetune.Tests.HuggingFace.Safetensors.SafetensorsTestFiles;

namespace CudaFinetune.Tests.IO;

/// <summary>
/// Hostile input for the readers of user-supplied files besides datasets and checkpoints (see
/// DatasetFuzzTests and CheckpointFuzzTests): run config files, a model's config.json and
/// safetensors weights. Thousands of mutations of valid files, random bytes and deliberate lies
/// alike, each load or are refused with one <see cref="UserErrorException"/> naming the file:
/// never another exception, a hang, or an allocation sized by a lying field.
/// </summary>
[TestFixture]
public sealed class HostileInputFuzzTests : TempDirectoryFixture
{
    // ---- run config files (--config) -----------------------------------------------------------

    private const string RunYaml = """
        # a run config, as a user writes one
        model: models/tiny          # a model directory
        dataset: data/train.jsonl
        output_dir: "out/run 1"
        peft: lora
        lora_config:
          r: 16
          lora_alpha: 32
          lora_dropout: 0.05
          target_modules: [q_proj, k_proj, v_proj]
          task_type: CAUSAL_LM
        batch_size_training: 2
        context_length: 128
        batching_strategy: packing
        gradient_accumulation_steps: 4
        gradient_clipping: true
        gradient_clipping_threshold: 0.5
        num_epochs: 2
        lr: 3e-4
        scheduler: cosine
        warmup-steps: 5
        seed: 7
        enable_fsdp: false
        quantization: null
        validation-fraction: 0.1

        """;

    private const string RunJson = """
        {
          "model": "models/tiny",
          "dataset": "data/train.jsonl",
          "output_dir": "out/run 1",
          "lora_config": {"r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"], "bias": "none"},
          "batch_size": 2,
          "context_length": 128,
          "gradient_clipping": 1.0,
          "num_epochs": 2,
          "lr": 0.0003,
          "weight_decay": 0.01,
          "scheduler": "linear",
          "use_peft": true,
          "save_model": true,
          "seed": 7,
        }

        """;

    private static readonly byte[] YamlBytes = ":-[]{},#&*!|>'\"\n \t%@`?~0.e"u8.ToArray();
    private static readonly byte[] JsonBytes = "\",{}[]:\n\\0-9.eE/*"u8.ToArray();

    private static readonly FinetuneOptions Defaults = new();

    private static void LoadRunConfig(string path) => RunConfigFile.Apply(Defaults, path);

    [TestCase("run.yaml", 1500)]
    [TestCase("run.json", 1500)]
    public void Run_config_byte_mutations_load_or_are_refused(string name, int cases)
    {
        bool yaml = name.EndsWith(".yaml", StringComparison.Ordinal);
        byte[] seed = Encoding.UTF8.GetBytes(yaml ? RunYaml : RunJson);
        string path = Dir.File(name);
        File.WriteAllBytes(path, seed);
        Assert.DoesNotThrow(() => LoadRunConfig(path), "the seed is a valid config");
        var random = new Random(yaml ? 71 : 72);
        FileFuzz.AssertBothOutcomes(FileFuzz.Run(path, cases, () => ByteMutations.Mutate(seed, random, random.Next(1, 4), yaml ? YamlBytes : JsonBytes, maxCut: 16), LoadRunConfig), cases);
    }

    /// <summary>Values a hand-edited or generated config could hold: wrong types, out-of-range numbers, YAML's special forms.</summary>
    private static readonly string[] HostileScalars =
    [
        "-1", "0", "1", "1e999", "-1e999", "99999999999999999999", "2147483648", "0.5", "''", "\"\"", "~", "null", "[]", "{}",
        "[1, [2, [3]]]", "{a: 1}", "*nowhere", "&x 1", "!!binary AAAA", "!!python/object:os.system ls", "!!int x", ".nan", ".inf",
        "0x10", "0o7", "1_000", "yes", "\"\\uD800\"", "'unterminated", "[unclosed", "|\n  block", ">-", "? complex", "- item",
    ];

    [Test]
    public void Run_config_hostile_values_load_or_are_refused()
    {
        var values = Regex.Matches(RunYaml, @"^ *[\w-]+: (?<value>[^\n#]+?) *(#.*)?$", RegexOptions.Multiline);
        string path = Dir.File("run.yml");
        var random = new Random(73);
        FileFuzz.AssertBothOutcomes(FileFuzz.Run(path, 1000, () => FileFuzz.ReplaceValue(RunYaml, values, HostileScalars, random), LoadRunConfig), 1000);
    }

    /// <summary>YAML that is small on disk but huge, endless or deep as a tree, and a key longer than YAML allows.</summary>
    private static IEnumerable<string> ExplosiveYaml()
    {
        // Nine levels of ten aliases each: a billion leaves from a kilobyte ("billion laughs").
        var laughs = new StringBuilder("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for (int level = 1; level <= 9; level++)
        {
            laughs.Append($"l{level}: &l{level} [{string.Join(", ", Enumerable.Repeat($"*l{level - 1}", 10))}]\n");
        }
        yield return laughs.ToString();
        yield return "lora_targets: &a [*a]\n";
        yield return "lora_targets: " + new string('[', 100_000) + new string(']', 100_000) + "\n";
        yield return "lora_targets:" + string.Concat(Enumerable.Range(1, 2_000).Select(depth => "\n" + new string(' ', depth) + "-")) + " x\n";
        yield return new string('k', 100_000) + ": 1\n";
    }

    /// <summary>Found by this fixture: the aliases hung the reader expanding them, the deep nesting overflowed the stack.</summary>
    [Test]
    public void Run_config_yaml_that_explodes_is_refused()
    {
        string[] inputs = [.. ExplosiveYaml()];
        string path = Dir.File("run.yaml");
        int next = 0;
        var (loaded, _) = FileFuzz.Run(path, inputs.Length, () => Encoding.UTF8.GetBytes(inputs[next++]), LoadRunConfig);
        Assert.That(loaded, Is.Zero);
    }

    /// <summary>Found by this fixture: "did you mean" compared a megabyte-long unknown key letter by letter with every known key, a second per megabyte.</summary>
    [Test]
    public void Run_config_with_a_huge_unknown_key_is_refused_at_once()
    {
        string path = Dir.File("run.json");
        var (loaded, _) = FileFuzz.Run(path, 1, () => Encoding.UTF8.GetBytes("{\"" + new string('k', 1_000_000) + "\": 1}"), LoadRunConfig);
        Assert.That(loaded, Is.Zero);
    }

    // ---- model config.json ---------------------------------------------------------------------

    private const string Transformers5Config = """
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
         "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 1, "vocab_size": 300, "dtype": "bfloat16",
         "eos_token_id": [2, 3], "bos_token_id": null, // a comment
         "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},}
        """;

    private static readonly string[] ModelConfigSeeds = [CudaFinetune.Tests.Model.LlamaConfigJsonTests.Llama32_1B, Transformers5Config];

    /// <summary>Reads a config.json and checks what the model builder derives from it fits in its integers.</summary>
    private static void LoadModelConfig(string path)
    {
        LlamaConfig config = LlamaConfigJson.Read(path);
        if (config.QueryWidth != (long)config.NumAttentionHeads * config.HeadSize || config.KeyValueWidth != (long)config.KeyValueHeads * config.HeadSize)
        {
            throw new OverflowException($"accepted a config whose attention widths overflow: {config}");
        }
    }

    [TestCase(0, 1000)]
    [TestCase(1, 1000)]
    public void Model_config_byte_mutations_load_or_are_refused(int seedIndex, int cases)
    {
        byte[] seed = Encoding.UTF8.GetBytes(ModelConfigSeeds[seedIndex]);
        string path = Dir.File("config.json");
        File.WriteAllBytes(path, seed);
        Assert.DoesNotThrow(() => LoadModelConfig(path), "the seed is a valid config");
        var random = new Random(80 + seedIndex);
        FileFuzz.AssertBothOutcomes(FileFuzz.Run(path, cases, () => ByteMutations.Mutate(seed, random, random.Next(1, 4), JsonBytes, maxCut: 16), LoadModelConfig), cases);
    }

    private static readonly string[] HostileJsonValues =
    [
        "-1", "0", "1", "2", "3", "65536", "1073741824", "2147483646", "2147483647", "2147483648", "9223372036854775807", "1e308", "-1e308",
        "1e-400", "0.5", "64.0", "\"x\"", "\"silu\"", "\"llama3\"", "null", "[]", "[1]", "[2147483648]", "{}", "true", "false",
    ];

    private static readonly Regex JsonValue = new(@"""\w+"": (?<value>-?[0-9][0-9.e+-]*|""[^""]*""|true|false|null|\{[^{}]*\}|\[[^\[\]]*\])");

    [Test]
    public void Model_config_hostile_values_load_or_are_refused()
    {
        string seed = CudaFinetune.Tests.Model.LlamaConfigJsonTests.Llama32_1B;
        string path = Dir.File("config.json");
        var random = new Random(82);
        // A second lie reaches the checks that compare fields (heads × head size, kv heads dividing heads).
        FileFuzz.AssertBothOutcomes(FileFuzz.Run(path, 1500, () =>
        {
            byte[] once = FileFuzz.ReplaceValue(seed, JsonValue.Matches(seed), HostileJsonValues, random);
            string text = Encoding.UTF8.GetString(once);
            return random.Next(2) == 0 ? once : FileFuzz.ReplaceValue(text, JsonValue.Matches(text), HostileJsonValues, random);
        }, LoadModelConfig), 1500);
    }

    // ---- safetensors ---------------------------------------------------------------------------

    /// <summary>One header entry, each field as raw JSON text (null: the field is left out), so that a test can write any lie.</summary>
    private sealed record Entry(string Name, string? DType, string? Shape, string? Offsets)
    {
        public string Json
        {
            get
            {
                var fields = new List<string>();
                if (DType is not null)
                {
                    fields.Add($"\"dtype\":{DType}");
                }
                if (Shape is not null)
                {
                    fields.Add($"\"shape\":{Shape}");
                }
                if (Offsets is not null)
                {
                    fields.Add($"\"data_offsets\":{Offsets}");
                }
                return $"{Name}:{{{string.Join(",", fields)}}}";
            }
        }
    }

    /// <summary>Every dtype the reader knows, zero-element and scalar tensors, and metadata: 62 data bytes.</summary>
    private static readonly Entry[] SeedEntries =
    [
        new("\"model.embed_tokens.weight\"", "\"F32\"", "[4,3]", "[0,48]"),
        new("\"model.norm.weight\"", "\"BF16\"", "[3]", "[48,54]"),
        new("\"lm_head.bias\"", "\"F16\"", "[2]", "[54,58]"),
        new("\"step\"", "\"I32\"", "[]", "[58,62]"),
        new("\"empty\"", "\"F64\"", "[0,5]", "[62,62]"),
    ];

    private const string SeedMetadata = "{\"format\":\"pt\"}";

    private static readonly byte[] SeedData = [.. Enumerable.Range(0, 62).Select(i => (byte)(i * 37))];

    private static string Header(IEnumerable<Entry> entries, string? metadata)
    {
        IEnumerable<string> fields = entries.Select(e => e.Json);
        return "{" + string.Join(",", metadata is null ? fields : fields.Prepend($"\"__metadata__\":{metadata}")) + "}";
    }

    /// <summary>Opens the file and reads every tensor, checking first that each one accepted lies inside the data buffer.</summary>
    private static void OpenAndReadAll(string path)
    {
        using var reader = new SafetensorsReader(path);
        long dataLength = new FileInfo(path).Length - reader.DataStart;
        foreach (SafetensorsTensorInfo t in reader.Tensors)
        {
            if (t.Offset < 0 || t.Length != t.ElementCount * t.DType.SizeInBytes() || t.Offset + t.Length > dataLength)
            {
                throw new InvalidOperationException($"accepted tensor '{t.Name}' at [{t.Offset}, +{t.Length}) of a {dataLength}-byte buffer");
            }
            using Tensor host = HostTensor(t.DType, [.. t.Shape.Dimensions]);
            reader.ReadInto(t.Name, host);
        }
    }

    [Test]
    public void Safetensors_byte_mutations_load_or_are_refused()
    {
        byte[] seed = Build(Header(SeedEntries, SeedMetadata), SeedData);
        string path = Dir.File("model.safetensors");
        File.WriteAllBytes(path, seed);
        Assert.DoesNotThrow(() => OpenAndReadAll(path), "the seed is a valid file");
        var random = new Random(90);
        FileFuzz.AssertBothOutcomes(FileFuzz.Run(path, 2000, () => ByteMutations.Mutate(seed, random, random.Next(1, 4), JsonBytes, maxCut: 16), OpenAndReadAll), 2000);
    }

    private static readonly string[] HostileDTypes =
        ["\"F32\"", "\"I32\"", "\"BF16\"", "\"F16\"", "\"F64\"", "\"I64\"", "\"U8\"", "\"BOOL\"", "\"F8_E4M3\"", "\"Q4_K\"", "\"\"", "\"f32\"", "32", "null", "[\"F32\"]", "{}"];

    private static readonly string[] HostileShapes =
    [
        "[12]", "[3,4]", "[2,2,3]", "[1,12]", "[]", "[0]", "[-1]", "[-0]", "[2.5]", "[2.0]", "[1e308]", "[\"2\"]", "[true]", "[[2]]", "null", "\"2\"", "{}",
        "[2147483647]", "[2147483648]", "[4294967296]", "[9223372036854775807]", "[18446744073709551616]", "[-9223372036854775808]",
        "[65536,65536,65536,65536]", "[2147483647,2147483647,2147483647]", "[2147483647,2147483647,2]", "[3037000500,3037000500]",
        "[0,2147483647,2147483647]", "[" + string.Join(",", Enumerable.Repeat(1, 1000)) + "]",
    ];

    private static readonly string[] HostileOffsets =
    [
        "[0,0]", "[0,-1]", "[-8,0]", "[0]", "[]", "[0,8,16]", "null", "[0.5,8]", "[\"0\",\"8\"]", "{}", "[null,null]",
        "[0,9223372036854775807]", "[9223372036854775807,9223372036854775807]", "[9223372036854775800,9223372036854775807]",
        "[18446744073709551615,0]", "[1e20,1e21]", "[62,110]", "[-9223372036854775808,0]",
    ];

    private static readonly string[] HostileMetadata = ["{}", "{\"format\":1}", "{\"a\":\"b\",\"a\":\"c\"}", "[]", "\"pt\"", "null", "{\"nested\":{}}"];

    private static readonly ulong[] LyingLengths = [0, 1, 7, ulong.MaxValue, 1UL << 63, long.MaxValue, (ulong)long.MaxValue + 1, SafetensorsHeader.MaxHeaderLength + 1, uint.MaxValue];

    /// <summary>A valid file with one to three deliberate lies in its header, length prefix or data length.</summary>
    private static byte[] LyingSafetensors(Random random)
    {
        var entries = SeedEntries.ToList();
        string? metadata = SeedMetadata;
        long? prefixDelta = null;
        ulong? prefix = null;
        int dataDelta = 0;
        T Pick<T>(IReadOnlyList<T> from) => from[random.Next(from.Count)];
        for (int lies = random.Next(1, 4); lies > 0; lies--)
        {
            int at = random.Next(entries.Count);
            Entry e = entries.Count > 0 ? entries[at] : new("\"w\"", "\"F32\"", "[1]", "[0,4]");
            switch (entries.Count == 0 ? 9 : random.Next(10))
            {
                case 0: entries[at] = e with { DType = Pick(HostileDTypes) }; break;
                case 1: entries[at] = e with { Shape = Pick(HostileShapes) }; break;
                case 2: entries[at] = e with { Offsets = Pick(HostileOffsets) }; break;
                case 3: entries[at] = e with { Offsets = Pick(entries).Offsets }; break; // overlaps another tensor
                case 4:
                    int shift = Pick(new[] { -8, -4, -2, -1, 1, 2, 4, 8 });
                    entries[at] = e with { Offsets = Regex.Replace(e.Offsets ?? "[0,0]", "-?[0-9]+", m => (long.Parse(m.Value, System.Globalization.CultureInfo.InvariantCulture) + shift).ToString(System.Globalization.CultureInfo.InvariantCulture)) };
                    break;
                case 5: entries[at] = random.Next(3) switch { 0 => e with { DType = null }, 1 => e with { Shape = null }, _ => e with { Offsets = null } }; break;
                case 6: entries[at] = e with { Name = Pick(new[] { Pick(entries).Name, "\"__metadata__\"", "\"\"", "\"\\u0000\"", "\"" + new string('n', 5000) + "\"" }) }; break;
                case 7: metadata = random.Next(4) == 0 ? null : Pick(HostileMetadata); break;
                case 8:
                    if (random.Next(2) == 0)
                    {
                        prefix = Pick(LyingLengths);
                    }
                    else
                    {
                        prefixDelta = Pick(new long[] { -8, -1, 1, 8, SeedData.Length, SeedData.Length + 1 });
                    }
                    break;
                default:
                    if (random.Next(2) == 0)
                    {
                        dataDelta = Pick(new[] { -62, -9, -1, 1, 8, 4096 });
                    }
                    else if (random.Next(2) == 0)
                    {
                        entries.RemoveAt(at); // a hole
                    }
                    else
                    {
                        entries.Add(e); // a duplicate
                    }
                    break;
            }
        }
        byte[] data = new byte[Math.Max(0, SeedData.Length + dataDelta)];
        SeedData.AsSpan(0, Math.Min(data.Length, SeedData.Length)).CopyTo(data);
        string header = Header(entries, metadata);
        ulong length = prefix ?? (ulong)(Encoding.UTF8.GetByteCount(header) + (prefixDelta ?? 0));
        return Build(header, data, length);
    }

    [Test]
    public void Safetensors_with_lying_headers_load_or_are_refused()
    {
        string path = Dir.File("model.safetensors");
        var random = new Random(91);
        FileFuzz.AssertBothOutcomes(FileFuzz.Run(path, 2000, () => LyingSafetensors(random), OpenAndReadAll), 2000);
    }
}
