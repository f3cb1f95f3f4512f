using CudaFinetune.Backends.Cpu;
using CudaFinetune.Errors;
using CudaFinetune.HuggingFace;
using CudaFinetune.HuggingFace.Safetensors;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Numerics;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.HuggingFace;

public sealed class HfModelDirectoryTests : TempDirectoryFixture
{
    private static readonly LlamaConfig Tied = new()
    {
        VocabSize = 64,
        HiddenSize = 16,
        IntermediateSize = 40,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        MaxPositionEmbeddings = 128,
        RopeScaling = new RopeScaling { Factor = 4, OriginalMaxPositionEmbeddings = 32 },
        TieWordEmbeddings = true,
    };

    private static readonly LlamaConfig Untied = Tied with { TieWordEmbeddings = false, NumKeyValueHeads = 4, RopeScaling = null };

    private CpuBackend _backend = null!;

    [SetUp]
    public void SetUp() => _backend = new CpuBackend(threads: 1);

    [TearDown]
    public void TearDown() => _backend.Dispose();

    private ParameterSet RandomWeights(LlamaConfig config, ulong seed = 7)
    {
        ParameterSet weights = LlamaWeights.Allocate(_backend, config);
        LlamaInitializer.Initialize(_backend, weights, config, seed);
        return weights;
    }

    private static LlamaConfig Resolved(LlamaConfig c) => c with { NumKeyValueHeads = c.KeyValueHeads, HeadDim = c.HeadSize };

    [Test]
    public void Tied_F32_round_trip_is_exact_and_has_no_lm_head()
    {
        using ParameterSet saved = RandomWeights(Tied);
        HfModelDirectory.Save(Dir.Path, Tied, saved, DType.F32);

        using (var reader = new SafetensorsReader(Dir.File("model.safetensors")))
        {
            Assert.That(reader.Tensors.Select(t => t.Name), Is.EqualTo(LlamaTensorNames.BaseWeights(Tied).Select(w => w.Name)));
            Assert.That(reader.TryGetTensor(LlamaTensorNames.LmHead, out _), Is.False);
        }
        var (config, loaded) = HfModelDirectory.Load(Dir.Path, _backend);
        using (loaded)
        {
            Assert.That(config, Is.EqualTo(Resolved(Tied) with { TorchDtype = "float32" }));
            Assert.That(loaded.All.Select(p => p.Name), Is.EqualTo(saved.All.Select(p => p.Name)));
            foreach (Parameter p in saved.All)
            {
                Assert.That(loaded[p.Name].Value.HostSpan<float>().ToArray(), Is.EqualTo(p.Value.HostSpan<float>().ToArray()), p.Name);
                Assert.That(loaded[p.Name].Trainable, Is.False);
            }
        }
    }

    [Test]
    public void Untied_BF16_round_trip_gives_the_bf16_rounded_values()
    {
        using ParameterSet saved = RandomWeights(Untied);
        HfModelDirectory.Save(Dir.Path, Untied, saved, DType.BF16);

        var (config, loaded) = HfModelDirectory.Load(Dir.Path, _backend);
        using (loaded)
        {
            Assert.That(config.TorchDtype, Is.EqualTo("bfloat16"));
            Assert.That(config.TieWordEmbeddings, Is.False);
            Assert.That(loaded.TryGet(LlamaTensorNames.LmHead, out _), Is.True);
            foreach (Parameter p in saved.All)
            {
                float[] expected = p.Value.HostSpan<float>().ToArray().Select(v => HalfPrecision.FromBFloat16(HalfPrecision.ToBFloat16(v))).ToArray();
                Assert.That(loaded[p.Name].Value.HostSpan<float>().ToArray(), Is.EqualTo(expected), p.Name);
            }
        }
    }

    [Test]
    public void A_double_precision_backend_loads_f32_files()
    {
        using ParameterSet saved = RandomWeights(Tied);
        HfModelDirectory.Save(Dir.Path, Tied, saved, DType.F32);
        using var f64 = new CpuBackend(DType.F64, threads: 1);
        var (_, loaded) = HfModelDirectory.Load(Dir.Path, f64);
        using (loaded)
        {
            Parameter embedding = loaded[LlamaTensorNames.Embedding];
            Assert.That(embedding.Value.DType, Is.EqualTo(DType.F64));
            Assert.That(embedding.Value.HostSpan<double>()[5], Is.EqualTo((double)saved[LlamaTensorNames.Embedding].Value.HostSpan<float>()[5]));
        }
    }

    /// <summary>Writes config.json for <paramref name="config"/> and a safetensors file with the given tensors.</summary>
    private void WriteModel(LlamaConfig config, IEnumerable<(string Name, int[] Shape)> tensors)
    {
        var list = tensors.Select(t => (t.Name, new Tensor(new HostStorage(DType.F32, new Shape(t.Shape).ElementCount), DType.F32, new Shape(t.Shape)))).ToList();
        try
        {
            SafetensorsWriter.Write(Dir.File("model.safetensors"), list, DType.F32);
            LlamaConfigJson.Write(Dir.File("config.json"), config);
        }
        finally
        {
            list.ForEach(t => t.Item2.Dispose());
        }
    }

    private UserErrorException LoadFails()
    {
        var e = Assert.Throws<UserErrorException>(() => HfModelDirectory.Load(Dir.Path, _backend).Weights.Dispose())!;
        return e;
    }

    [Test]
    public void Missing_tensor_is_named_with_its_shape()
    {
        string missing = LlamaTensorNames.LinearWeight(1, "v_proj");
        WriteModel(Tied, LlamaTensorNames.BaseWeights(Tied).Where(w => w.Name != missing));
        Assert.That(LoadFails().Message, Does.Contain(missing).And.Contain("[8, 16]").And.Contain("missing"));
    }

    [Test]
    public void Missing_lm_head_suggests_tied_embeddings()
    {
        WriteModel(Untied, LlamaTensorNames.BaseWeights(Tied));
        Assert.That(LoadFails().Message, Does.Contain("lm_head.weight").And.Contain("tie_word_embeddings"));
    }

    [Test]
    public void Wrong_shape_names_tensor_expected_and_found_shapes()
    {
        string name = LlamaTensorNames.LinearWeight(0, "gate_proj");
        WriteModel(Tied, LlamaTensorNames.BaseWeights(Tied).Select(w => w.Name == name ? (w.Name, new[] { 16, 40 }) : w));
        Assert.That(LoadFails().Message, Does.Contain(name).And.Contain("[16, 40]").And.Contain("[40, 16]"));
    }

    [Test]
    public void Bias_tensors_mean_an_unsupported_architecture()
    {
        WriteModel(Tied, LlamaTensorNames.BaseWeights(Tied).Append(("model.layers.0.self_attn.q_proj.bias", new[] { 16 })));
        Assert.That(LoadFails().Message, Does.Contain("q_proj.bias").And.Contain("architecture"));
    }

    [Test]
    public void Unknown_extra_tensors_are_refused_but_tied_lm_head_and_inv_freq_are_ignored()
    {
        WriteModel(Tied, LlamaTensorNames.BaseWeights(Tied).Append(("model.layers.2.input_layernorm.weight", new[] { 16 })));
        Assert.That(LoadFails().Message, Does.Contain("model.layers.2.input_layernorm.weight"));

        WriteModel(Tied, LlamaTensorNames.BaseWeights(Tied)
            .Append((LlamaTensorNames.LmHead, new[] { 64, 16 }))
            .Append(("model.layers.0.self_attn.rotary_emb.inv_freq", new[] { 2 })));
        var (_, weights) = HfModelDirectory.Load(Dir.Path, _backend);
        using (weights)
        {
            Assert.That(weights.TryGet(LlamaTensorNames.LmHead, out _), Is.False);
        }
    }

    [Test]
    public void Missing_directory_and_files_say_what_to_do()
    {
        string absent = Path.Combine(Dir.Path, "nope");
        Assert.That(() => HfModelDirectory.Load(absent, _backend), Throws.TypeOf<UserErrorException>().With.Message.Contain("does not exist").And.Message.Contain("init-model"));

        Assert.That(() => HfModelDirectory.Load(Dir.Path, _backend), Throws.TypeOf<UserErrorException>().With.Message.Contain("config.json"));

        LlamaConfigJson.Write(Dir.File("config.json"), Tied);
        Assert.That(() => HfModelDirectory.Load(Dir.Path, _backend), Throws.TypeOf<UserErrorException>().With.Message.Contain("model.safetensors"));

        File.WriteAllText(Dir.File("model.safetensors.index.json"), "{\"weight_map\": {}}");
        Assert.That(() => HfModelDirectory.Load(Dir.Path, _backend), Throws.TypeOf<UserErrorException>().With.Message.Contain("missing").And.Message.Contain("model.embed_tokens.weight"));
    }

    [Test]
    public void Sharded_weights_with_an_index_load_exactly_and_a_bad_index_is_named()
    {
        using ParameterSet saved = RandomWeights(Untied);
        HfModelDirectory.Save(Dir.Path, Untied, saved, DType.BF16, maxShardBytes: 3000);
        var shards = Directory.GetFiles(Dir.Path, "model-*-of-*.safetensors").Select(f => Path.GetFileName(f)).Order().ToList();
        Assert.That(shards, Has.Count.GreaterThan(2));
        Assert.That(shards[0], Is.EqualTo($"model-00001-of-{shards.Count:D5}.safetensors"), "save_pretrained's names");
        Assert.That(File.Exists(Dir.File("model.safetensors")), Is.False);

        var (_, loaded) = HfModelDirectory.Load(Dir.Path, _backend);
        using (loaded)
        {
            foreach (var p in saved.All)
            {
                float[] expected = [.. p.Value.HostSpan<float>().ToArray().Select(x => HalfPrecision.FromBFloat16(HalfPrecision.ToBFloat16(x)))];
                Assert.That(loaded[p.Name].Value.HostSpan<float>().ToArray(), Is.EqualTo(expected), p.Name);
            }
        }

        string index = File.ReadAllText(Dir.File("model.safetensors.index.json"));
        string normFile = System.Text.RegularExpressions.Regex.Match(index, "\"model.norm.weight\": \"([^\"]+)\"").Groups[1].Value;
        string wrong = shards.First(f => f != normFile);
        File.WriteAllText(Dir.File("model.safetensors.index.json"), index.Replace($"\"model.norm.weight\": \"{normFile}\"", $"\"model.norm.weight\": \"{wrong}\"", StringComparison.Ordinal));
        Assert.That(() => HfModelDirectory.Load(Dir.Path, _backend), Throws.TypeOf<UserErrorException>().With.Message.Contain("model.norm.weight").And.Message.Contain(wrong));
        File.WriteAllText(Dir.File("model.safetensors.index.json"), index);
        File.Delete(Dir.File(shards[1]));
        Assert.That(() => HfModelDirectory.Load(Dir.Path, _backend), Throws.TypeOf<UserErrorException>().With.Message.Contain(shards[1]).And.Message.Contain("no such file"));
    }
}
