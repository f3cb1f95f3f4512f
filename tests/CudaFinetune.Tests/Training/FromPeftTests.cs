using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Reporting;
using CudaFinetune.Tests.Support;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Training;

/// <summary>--from-peft (llama-recipes' from_peft_checkpoint): training starts from an existing adapter, with its settings.</summary>
[TestFixture]
public sealed class FromPeftTests : LearnableTaskFixture
{
    private FinetuneOptions Options(string name) => LearnableTask.Options(ModelDir, DataFile, Dir.File(name)) with { NumEpochs = 2 };

    [Test]
    public void Training_starts_from_the_adapters_weights_and_settings()
    {
        var first = TrainingRuns.Train(Options("first") with { LoraR = 4, LoraAlpha = 8, LoraTargets = "q_proj,v_proj,down_proj" });
        var fresh = TrainingRuns.Train(Options("fresh"));

        using (var session = FinetuneSession.Open(Options("continued") with { FromPeft = first.AdapterDir }))
        {
            Assert.That((session.Options.LoraR, session.Options.LoraAlpha, session.Options.LoraTargets), Is.EqualTo((4, 8.0, "q_proj,v_proj,down_proj")), "the adapter's settings");
            using var backend = new CudaFinetune.Backends.Cpu.CpuBackend(threads: 1);
            var (adapted, _) = ModelLoader.Load(ModelDir, first.AdapterDir, backend);
            using (adapted)
            {
                var trained = adapted.TrainableParameters.ToDictionary(p => p.Name, p => p.Value.HostSpan<float>().ToArray());
                Assert.That(session.Model.TrainableParameters.Select(p => p.Name), Is.EquivalentTo(trained.Keys));
                foreach (var p in session.Model.TrainableParameters)
                {
                    Assert.That(p.Value.HostSpan<float>().ToArray(), Is.EqualTo(trained[p.Name]), p.Name);
                }
            }
            var result = session.Train();
            double start = MetricsFile.ReadStepLosses(result.MetricsPath)[0].Loss;
            Assert.That(start, Is.LessThan(MetricsFile.ReadStepLosses(fresh.MetricsPath)[0].Loss), "it starts where the first run ended, not from scratch");
            Assert.That(PeftAdapterDirectory.ReadConfig(result.AdapterDir!).Rank, Is.EqualTo(4));
        }
    }

    [Test]
    public void It_needs_lora_and_an_adapter_directory()
    {
        var e = Assert.Throws<UserErrorException>(() => FinetuneSession.Open(Options("full") with { Peft = "none", FromPeft = Dir.Path }).Dispose());
        Assert.That(e!.Message, Does.Contain("--from-peft").And.Contain("--peft lora"));
        var missing = Assert.Throws<UserErrorException>(() => FinetuneSession.Open(Options("x") with { FromPeft = Dir.File("nowhere") }).Dispose());
        Assert.That(missing!.Message, Does.Contain("adapter_config.json"));
    }
}
