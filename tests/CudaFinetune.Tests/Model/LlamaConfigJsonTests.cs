using System.Text;
using CudaFinetune.Errors;
using CudaFinetune.Model;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Model;

public sealed class LlamaConfigJsonTests
{
    /// <summary>meta-llama/Llama-3.2-1B's config.json as transformers 4.45 wrote it.</summary>
    internal const string Llama32_1B = """
        {
          "architectures": [
            "LlamaForCausalLM"
          ],
          "attention_bias": false,
          "attention_dropout": 0.0,
          "bos_token_id": 128000,
          "eos_token_id": 128001,
          "head_dim": 64,
          "hidden_act": "silu",
          "hidden_size": 2048,
          "initializer_range": 0.02,
          "intermediate_size": 8192,
          "max_position_embeddings": 131072,
          "mlp_bias": false,
          "model_type": "llama",
          "num_attention_heads": 32,
          "num_hidden_layers": 16,
          "num_key_value_heads": 8,
          "pretraining_tp": 1,
          "rms_norm_eps": 1e-05,
          "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3"
          },
          "rope_theta": 500000.0,
          "tie_word_embeddings": true,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.45.0.dev0",
          "use_cache": true,
          "vocab_size": 128256
        }
        """;

    private static LlamaConfig Parse(string json) => LlamaConfigJson.Parse(Encoding.UTF8.GetBytes(json), "test/config.json");

    /// <summary>What a config reads back as: the writer spells out the defaulted head count and head size.</summary>
    private static LlamaConfig Resolved(LlamaConfig c) => c with { NumKeyValueHeads = c.KeyValueHeads, HeadDim = c.HeadSize };

    [Test]
    public void Llama_3_2_1B_config_parses()
    {
        LlamaConfig c = Parse(Llama32_1B);
        Assert.That(c, Is.EqualTo(new LlamaConfig
        {
            VocabSize = 128256,
            HiddenSize = 2048,
            IntermediateSize = 8192,
            NumHiddenLayers = 16,
            NumAttentionHeads = 32,
            NumKeyValueHeads = 8,
            HeadDim = 64,
            MaxPositionEmbeddings = 131072,
            RmsNormEps = 1e-5,
            RopeTheta = 500000.0,
            RopeScaling = new RopeScaling { RopeType = "llama3", Factor = 32, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 8192 },
            TieWordEmbeddings = true,
            InitializerRange = 0.02,
            BosTokenId = 128000,
            EosTokenId = 128001,
            HiddenAct = "silu",
            TorchDtype = "bfloat16",
        }));
    }

    [Test]
    public void Instruct_eos_list_takes_the_first_id_and_older_type_key_is_read()
    {
        string json = Llama32_1B
            .Replace("\"eos_token_id\": 128001", "\"eos_token_id\": [128001, 128008, 128009]", StringComparison.Ordinal)
            .Replace("\"rope_type\": \"llama3\"", "\"type\": \"llama3\"", StringComparison.Ordinal);
        LlamaConfig c = Parse(json);
        Assert.That(c.EosTokenId, Is.EqualTo(128001));
        Assert.That(c.RopeScaling?.RopeType, Is.EqualTo("llama3"));
    }

    [Test]
    public void Llama_2_style_config_uses_defaults_for_absent_keys()
    {
        LlamaConfig c = Parse("""
            {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 11008,
             "num_attention_heads": 32, "num_hidden_layers": 32, "rms_norm_eps": 1e-06, "rope_scaling": null,
             "pad_token_id": 0, "vocab_size": 32000, "torch_dtype": "float16"}
            """);
        Assert.That(c.KeyValueHeads, Is.EqualTo(32));
        Assert.That(c.HeadSize, Is.EqualTo(128));
        Assert.That(c.RopeScaling, Is.Null);
        Assert.That(c.RopeTheta, Is.EqualTo(10000.0));
        Assert.That(c.TieWordEmbeddings, Is.False);
        Assert.That(c.BosTokenId, Is.EqualTo(1));
    }

    [Test]
    public void Transformers_5_rope_parameters_are_read()
    {
        LlamaConfig c = Parse("""
            {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1, "dtype": "bfloat16",
             "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
            """);
        Assert.That(c.RopeTheta, Is.EqualTo(500000.0));
        Assert.That(c.RopeScaling, Is.EqualTo(new RopeScaling { Factor = 8, OriginalMaxPositionEmbeddings = 8192 }));
        Assert.That(c.TorchDtype, Is.EqualTo("bfloat16"));

        LlamaConfig plain = Parse("""{"model_type": "llama", "rope_parameters": {"rope_type": "default", "rope_theta": 20000.0}}""");
        Assert.That(plain.RopeScaling, Is.Null);
        Assert.That(plain.RopeTheta, Is.EqualTo(20000.0));
    }

    [TestCase("tiny")]
    [TestCase("bench-tiny")]
    public void Presets_round_trip(string preset)
    {
        LlamaConfig config = LlamaPresets.Get(preset);
        byte[] json = LlamaConfigJson.Serialize(config);
        Assert.That(LlamaConfigJson.Parse(json), Is.EqualTo(Resolved(config)));
        Assert.That(LlamaConfigJson.Serialize(LlamaConfigJson.Parse(json)), Is.EqualTo(json), "writing what was read gives the same bytes");
    }

    [Test]
    public void Round_trip_keeps_gqa_rope_scaling_explicit_head_dim_and_null_token_ids()
    {
        var config = new LlamaConfig
        {
            VocabSize = 300,
            HiddenSize = 96,
            IntermediateSize = 200,
            NumHiddenLayers = 3,
            NumAttentionHeads = 6,
            NumKeyValueHeads = 2,
            HeadDim = 24,
            MaxPositionEmbeddings = 4096,
            RmsNormEps = 1.25e-6,
            RopeTheta = 123456.789,
            RopeScaling = new RopeScaling { Factor = 2.5, LowFreqFactor = 0.5, HighFreqFactor = 3.75, OriginalMaxPositionEmbeddings = 512 },
            TieWordEmbeddings = false,
            InitializerRange = 0.0123,
            BosTokenId = null,
            EosTokenId = null,
            HiddenAct = "swish",
            TorchDtype = "bfloat16",
        };
        using var dir = new TempDirectory();
        LlamaConfigJson.Write(dir.File("config.json"), config);
        Assert.That(LlamaConfigJson.Read(dir.File("config.json")), Is.EqualTo(config));
    }

    [Test]
    public void Written_json_is_indented_sorted_and_spells_floats_as_python_does()
    {
        string text = Encoding.UTF8.GetString(LlamaConfigJson.Serialize(LlamaPresets.Tiny));
        Assert.That(text, Does.StartWith("{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n"));
        Assert.That(text, Does.Contain("\"model_type\": \"llama\""));
        Assert.That(text, Does.Contain("\"rms_norm_eps\": 1e-05,"));
        Assert.That(text, Does.Contain("\"factor\": 32.0,"));
        Assert.That(text, Does.Contain("\"rope_theta\": 500000.0,"));
        Assert.That(text, Does.EndWith("}\n"));
        Assert.That(text, Does.Not.Contain("\r"));
    }

    [Test]
    public void Other_architectures_are_refused_naming_what_is_supported()
    {
        var e = Assert.Throws<UserErrorException>(() => Parse("""{"architectures": ["MistralForCausalLM"], "model_type": "mistral"}"""))!;
        Assert.That(e.Message, Does.Contain("mistral").And.Contain("MistralForCausalLM").And.Contain("LlamaForCausalLM").And.Contain("test/config.json"));
        Assert.That(() => Parse("{}"), Throws.TypeOf<UserErrorException>().With.Message.Contain("no model_type"));
        Assert.That(Parse("""{"architectures": ["LlamaForCausalLM"]}""").VocabSize, Is.EqualTo(32000));
    }

    [TestCase("\"hidden_size\": \"2048\"", "'hidden_size'")]
    [TestCase("\"hidden_size\": 2048.5", "'hidden_size'")]
    [TestCase("\"rms_norm_eps\": \"small\"", "'rms_norm_eps'")]
    [TestCase("\"tie_word_embeddings\": 1", "'tie_word_embeddings'")]
    [TestCase("\"eos_token_id\": [\"</s>\"]", "'eos_token_id'")]
    [TestCase("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": \"big\"}", "'rope_scaling.factor'")]
    [TestCase("\"rope_scaling\": 8", "'rope_scaling'")]
    [TestCase("\"hidden_act\": 3", "'hidden_act'")]
    public void Wrong_types_name_the_key(string entry, string key)
    {
        var e = Assert.Throws<UserErrorException>(() => Parse("{\"model_type\": \"llama\", " + entry + "}"))!;
        Assert.That(e.Message, Does.Contain(key));
    }

    [Test]
    public void Inconsistent_or_unsupported_values_fail_validation_naming_the_file()
    {
        Assert.That(() => Parse("""{"model_type": "llama", "num_attention_heads": 6, "num_key_value_heads": 4, "hidden_size": 96}"""),
            Throws.TypeOf<UserErrorException>().With.Message.Contain("test/config.json").And.Message.Contain("num_key_value_heads"));
        Assert.That(() => Parse("""{"model_type": "llama", "rope_scaling": {"type": "linear", "factor": 2.0}}"""),
            Throws.TypeOf<UserErrorException>().With.Message.Contain("linear"));
        Assert.That(() => Parse("""{"model_type": "llama", "attention_bias": true}"""),
            Throws.TypeOf<UserErrorException>().With.Message.Contain("attention_bias"));
        Assert.That(() => Parse("{\"model_type\": "), Throws.TypeOf<UserErrorException>().With.Message.Contain("not valid JSON"));
    }

    /// <summary>Found by HostileInputFuzzTests: a corrupt byte inside a string was an InvalidOperationException.</summary>
    [Test]
    public void Invalid_utf8_is_refused_naming_the_file()
    {
        byte[] json = Encoding.UTF8.GetBytes("""{"model_type": "llama", "torch_dtype": "bfloat~16"}""");
        json[Array.IndexOf(json, (byte)'~')] = 0xEC;
        Assert.That(() => LlamaConfigJson.Parse(json, "test/config.json"),
            Throws.TypeOf<UserErrorException>().With.Message.Contain("test/config.json").And.Message.Contain("UTF-8"));
    }

    /// <summary>Found by HostileInputFuzzTests: 1073741824 heads of 64 passed validation with a q width that wrapped to 0.</summary>
    [Test]
    public void Attention_widths_that_overflow_are_refused()
    {
        Assert.That(() => Parse("""{"model_type": "llama", "num_attention_heads": 16777216, "num_key_value_heads": 1, "head_dim": 128}"""),
            Throws.TypeOf<UserErrorException>().With.Message.Contain("test/config.json").And.Message.Contain("num_attention_heads 16777216"));
        Assert.That(Parse("""{"model_type": "llama", "num_attention_heads": 16777215, "num_key_value_heads": 1, "head_dim": 128}""").QueryWidth,
            Is.EqualTo(16777215 * 128), "the widest that fits in an int is accepted");
    }

    [Test]
    public void Missing_file_says_what_is_needed()
    {
        using var dir = new TempDirectory();
        Assert.That(() => LlamaConfigJson.Read(dir.File("config.json")),
            Throws.TypeOf<UserErrorException>().With.Message.Contain("no such file"));
    }
}
