using CudaFinetune.Backends.Cpu;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.HuggingFace;
using CudaFinetune.HuggingFace.Safetensors;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Hosting;

/// <summary>
/// export: a checkpoint's adapter in PEFT's layout (from one rank or from a sharded run), and a merged model whose logits
/// are the base model's with the adapter applied.
/// </summary>
[TestFixture]
public sealed class CheckpointExportTests : LearnableTaskFixture
{
    private FinetuneOptions Options(string name) => LearnableTask.Options(ModelDir, DataFile, Dir.File(name)) with { NumEpochs = 2, KeepLast = 0 };

    private static Dictionary<string, float[]> Tensors(string file)
    {
        using var reader = new SafetensorsReader(file);
        return reader.Tensors.ToDictionary(t => t.Name, t =>
        {
            using var host = new Tensor(new HostStorage(DType.F32, t.ElementCount), DType.F32, t.Shape);
            reader.ReadInto(t.Name, host);
            return host.HostSpan<float>().ToArray();
        });
    }

    [TestCase(1)]
    [TestCase(3)]
    public void A_peft_export_holds_the_runs_adapter_whatever_world_size_saved_it(int worldSize)
    {
        var run = TrainingRuns.Train(Options("run") with { WorldSize = worldSize });
        CheckpointExport.ToPeft(run.OutputDir, Dir.File("peft"));
        var exported = Tensors(Dir.File("peft/adapter_model.safetensors"));
        var trained = Tensors(Path.Combine(run.AdapterDir!, PeftAdapterDirectory.WeightsFileName));
        Assert.That(exported.Keys, Is.EquivalentTo(trained.Keys));
        Assert.That(exported.Keys, Has.All.StartWith("base_model.model.model.layers."), "PEFT's names");
        foreach (var (name, values) in trained)
        {
            Assert.That(exported[name], Is.EqualTo(values), name);
        }
        var config = PeftAdapterDirectory.ReadConfig(Dir.File("peft"));
        var expected = PeftAdapterDirectory.ReadConfig(run.AdapterDir!);
        Assert.That((config.Rank, config.Alpha, config.TargetModules), Is.EqualTo((expected.Rank, expected.Alpha, expected.TargetModules)));
    }

    [Test]
    public void A_merged_model_gives_the_logits_of_the_base_model_with_its_adapter()
    {
        var run = TrainingRuns.Train(Options("run"));
        CheckpointExport.ToMerged(run.OutputDir, Dir.File("merged"), dtype: DType.F32, maxShardBytes: 20_000);
        Assert.That(File.Exists(Dir.File("merged/model.safetensors.index.json")), Is.True, "a small shard size gives shards and an index");

        using var backend = new CpuBackend(threads: 1);
        var (adapted, _) = ModelLoader.Load(ModelDir, run.AdapterDir, backend);
        var (merged, _) = ModelLoader.Load(Dir.File("merged"), null, backend);
        var (plain, _) = ModelLoader.Load(ModelDir, null, backend);
        using (adapted)
        using (merged)
        using (plain)
        {
            Assert.That(merged.Lora, Is.Null);
            int[] probe = [1, 2, 3];
            var moved = new TextGenerator(adapted).LogitsAfter(probe, 3).Zip(new TextGenerator(plain).LogitsAfter(probe, 3), (a, b) => Math.Abs(a - b)).Max();
            Assert.That(moved, Is.GreaterThan(1e-2f), "the trained adapter changes the logits, so the comparison below means something");
            int[][] prompts = [[1, 2, 3, 4, 5], [7, 7, 7], [31, 0, 12, 9, 4, 4, 18, 2]];
            foreach (var prompt in prompts)
            {
                float[] expected = new TextGenerator(adapted).LogitsAfter(prompt, prompt.Length);
                float[] actual = new TextGenerator(merged).LogitsAfter(prompt, prompt.Length);
                for (int i = 0; i < expected.Length; i++)
                {
                    Assert.That(actual[i], Is.EqualTo(expected[i]).Within(1e-4f + 1e-4f * Math.Abs(expected[i])), $"prompt {string.Join(",", prompt)}, logit {i}");
                }
            }
        }
    }

    [Test]
    public void A_merged_full_fine_tune_is_its_trained_weights_and_a_peft_export_of_it_is_refused()
    {
        var run = TrainingRuns.Train(Options("full") with { Peft = "none", NumEpochs = 1 });
        CheckpointExport.ToMerged(run.OutputDir, Dir.File("merged"), dtype: DType.F32);
        using var backend = new CpuBackend(threads: 1);
        var (_, trained) = HfModelDirectory.Load(run.ModelDir!, backend);
        var (_, exported) = HfModelDirectory.Load(Dir.File("merged"), backend);
        using (trained)
        using (exported)
        {
            foreach (var p in trained.All)
            {
                Assert.That(exported[p.Name].Value.HostSpan<float>().ToArray(), Is.EqualTo(p.Value.HostSpan<float>().ToArray()), p.Name);
            }
        }
        var e = Assert.Throws<UserErrorException>(() => CheckpointExport.ToPeft(run.OutputDir, Dir.File("peft")));
        Assert.That(e!.Message, Does.Contain("full fine-tuning").And.Contain("--format merged"));
    }

    [Test]
    public void A_moved_base_model_is_asked_for_and_another_model_is_refused()
    {
        var run = TrainingRuns.Train(Options("run") with { MaxSteps = 2 });
        Directory.Move(ModelDir, Dir.File("moved"));
        var missing = Assert.Throws<UserErrorException>(() => CheckpointExport.ToMerged(run.OutputDir, Dir.File("merged")));
        Assert.That(missing!.Message, Does.Contain("--base-model"));
        Assert.DoesNotThrow(() => CheckpointExport.ToMerged(run.OutputDir, Dir.File("merged"), baseModel: Dir.File("moved")));

        var (other, _) = LearnableTask.Write(Dir.File("other"), LearnableTask.Config with { NumHiddenLayers = 1 });
        var wrong = Assert.Throws<UserErrorException>(() => CheckpointExport.ToMerged(run.OutputDir, Dir.File("merged2"), baseModel: other));
        Assert.That(wrong!.Message, Does.Contain("is not the model"));
    }
}
