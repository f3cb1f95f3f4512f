using System.Text;
using System.Text.Json;
using CudaFinetune.Config;
using CudaFinetune.Training;
using NUnit.Framework;

namespace CudaFinetune.Tests.Config;

/// <summary>
/// The option registry (<see cref="RunConfigKeys.All"/>) is what saves, reads back and compares options: every option a
/// run depends on is saved and comes back as it was, and every property of <see cref="FinetuneOptions"/> has a key.
/// </summary>
[TestFixture]
public sealed class OptionRegistryTests
{
    /// <summary>Options with every saved value away from its default.</summary>
    private static readonly FinetuneOptions Unusual = new()
    {
        Model = "/m", Dataset = "/d.jsonl", OutputDir = "/out", Peft = "lora", LoraR = 4, LoraAlpha = 3.5, LoraDropout = 0.25,
        LoraTargets = "q_proj,down_proj", FromPeft = "/adapter", DatasetFormat = "custom", ChatTemplate = "llama2", FieldMap = "prompt=q",
        PromptTemplate = "Q: {prompt}", ValidationDataset = "/v.jsonl", ValidationFraction = 0.2, BatchSize = 3, ContextLength = 48,
        Batching = BatchingStrategy.Padding, Shuffle = false, GradientAccumulationSteps = 5, NumEpochs = 7, MaxSteps = 11, Lr = 3e-3,
        WeightDecay = 0.5, Beta1 = 0.8, Beta2 = 0.95, Epsilon = 1e-6, Scheduler = SchedulerKind.Cosine, WarmupSteps = 9, Gamma = 0.5,
        GradientClipping = 2.5, SkipNonfinite = false, Seed = 12345678901234567890, EvalEvery = 13, SaveEvery = 17, KeepLast = 2,
        Device = "cpu", WorldSize = 4, NprocPerNode = 2, ZeroStage = 3, DistTimeout = 77,
    };

    [Test]
    public void Saved_options_read_back_as_they_were()
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            FinetuneOptionsJson.Write(w, Unusual);
        }
        var back = RunConfigFile.ApplyText(new FinetuneOptions(), Encoding.UTF8.GetString(buffer.WrittenSpan), "saved", yaml: false);
        Assert.That(back, Is.EqualTo(Unusual));
    }

    [Test]
    public void Every_option_property_has_a_key_and_every_key_names_a_property()
    {
        string[] properties = [.. typeof(FinetuneOptions).GetProperties().Where(p => p.CanWrite).Select(p => p.Name).Order(StringComparer.Ordinal)];
        string[] registered = [.. RunConfigKeys.All.Select(k => k.Property).Distinct().Order(StringComparer.Ordinal)];
        Assert.That(registered, Is.EqualTo(properties));
    }

    [Test]
    public void A_compared_option_has_a_rule_and_a_ruled_option_is_saved_and_compared()
    {
        var options = new FinetuneOptions();
        Assert.That(RunConfigKeys.All.Where(k => (k.Compared(options) is null) != (k.Resume == ResumeRule.Free)).Select(k => k.Name), Is.Empty);
        Assert.That(RunConfigKeys.All.Where(k => k.Resume != ResumeRule.Free && !k.Saved).Select(k => k.Name), Is.Empty);
    }

    /// <summary>Every key with a flag is a finetune flag, typed and described from the registry, and a flag given sets the option.</summary>
    [Test]
    public void Every_flag_comes_from_the_registry_and_sets_its_option()
    {
        var flags = new CudaFinetune.Cli.Commands.FinetuneFlags();
        var names = flags.Options.All.Select(o => o.Name).ToList();
        Assert.That(names, Is.EqualTo(RunConfigKeys.All.Where(k => k.Flag is not null).Select(k => k.Flag)));
        var command = new System.CommandLine.RootCommand();
        foreach (var option in flags.All)
        {
            command.Options.Add(option);
        }
        var parse = command.Parse(["--lora-r", "5", "--lr", "2e-3", "--shuffle", "false", "--seed", "7", "--batching", "padding", "--scheduler", "cosine", "--model", "/m"]);
        Assert.That(parse.Errors, Is.Empty);
        var resolved = flags.Resolve(parse, new FinetuneOptions());
        Assert.That(resolved, Is.EqualTo(new FinetuneOptions
        {
            LoraR = 5, Lr = 2e-3, Shuffle = false, Seed = 7, Batching = BatchingStrategy.Padding, Scheduler = SchedulerKind.Cosine, Model = "/m",
        }));
        Assert.That(flags.Resolve(command.Parse([]), Unusual), Is.EqualTo(Unusual), "flags not given keep the starting options");
    }

    [Test]
    public void The_option_table_in_the_cli_doc_is_the_registry()
    {
        string[] expected = [.. RunConfigFile.OptionTable().Skip(2)];
        string[] doc = File.ReadAllLines(Support.RepositoryFiles.Path("docs", "cli.md"));
        int header = Array.IndexOf(doc, RunConfigFile.OptionTableHeader);
        Assert.That(header, Is.GreaterThan(0), "docs/cli.md has the option table");
        string[] table = [.. doc.Skip(header + 2).TakeWhile(line => line.StartsWith('|'))];
        if (Environment.GetEnvironmentVariable("CUDAFINETUNE_WRITE_DOCS") == "1")
        {
            // A developer's way to rewrite the table after changing the registry.
            File.WriteAllLines(Support.RepositoryFiles.Path("docs", "cli.md"), [.. doc.Take(header + 2), .. expected, .. doc.Skip(header + 2 + table.Length)]);
            return;
        }
        Assert.That(table, Is.EqualTo(expected), "docs/cli.md's option table differs from the registry (RunConfigKeys.All); "
            + "CUDAFINETUNE_WRITE_DOCS=1 dotnet test --filter OptionRegistryTests rewrites it");
    }
}
