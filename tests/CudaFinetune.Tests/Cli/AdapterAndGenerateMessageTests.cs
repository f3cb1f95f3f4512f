using CudaFinetune.Cli;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cli;

/// <summary>
/// What finetune --from-peft, eval/generate --adapter and generate tell the user: LoRA flags the adapter overrides,
/// adapter directories named by the flag they came with, and generate's limits checked before any output.
/// </summary>
[TestFixture]
public sealed class AdapterAndGenerateMessageTests : LearnableTaskFixture
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => CliRuns.Run(args);

    private string[] Finetune(string run, params string[] extra) =>
        ["finetune", "--model", ModelDir, "--dataset", DataFile, "--output-dir", Dir.File(run), "--context-length", "16", "--batch-size", "4", "--max-steps", "1", "--device", "cpu", .. extra];

    [Test]
    public void From_peft_warns_about_each_lora_flag_with_another_value_than_the_adapters()
    {
        var first = Cli(Finetune("first", "--lora-r", "4", "--lora-alpha", "8", "--lora-targets", "q_proj,v_proj"));
        Assert.That(first.Code, Is.Zero, first.Err);
        string adapter = Path.Combine(Dir.File("first"), "adapter");

        var (code, output, error) = Cli(Finetune("second", "--from-peft", adapter, "--lora-r", "16", "--lora-alpha", "8", "--lora-targets", "v_proj, q_proj"));
        Assert.That(code, Is.Zero, error);
        var warnings = output.Split('\n').Where(l => l.StartsWith("warning:", StringComparison.Ordinal)).ToList();
        Assert.That(warnings, Is.EqualTo(new[] { $"warning: --lora-r 16 is ignored: the adapter in '{adapter}' has r 4 (--from-peft takes its rank, alpha and target modules)" }),
            "alpha and targets equal the adapter's (in another order): no warning for them");

        var all = Cli(Finetune("third", "--from-peft", adapter, "--lora-alpha", "32", "--lora-targets", "all-linear"));
        Assert.That(all.Code, Is.Zero, all.Err);
        Assert.That(all.Out, Does.Contain($"warning: --lora-alpha 32 is ignored: the adapter in '{adapter}' has lora_alpha 8 (")
            .And.Contain($"warning: --lora-targets all-linear is ignored: the adapter in '{adapter}' has target modules q_proj,v_proj ("));
    }

    [Test]
    public void A_wrong_adapter_directory_is_named_by_the_flag_it_came_with()
    {
        string nowhere = Dir.File("nowhere");
        var fromPeft = Cli(Finetune("run", "--from-peft", nowhere));
        Assert.That(fromPeft.Code, Is.EqualTo(Program.ExitUserError));
        Assert.That(fromPeft.Err, Does.StartWith($"error: --from-peft '{nowhere}': no such directory; give the directory a LoRA fine-tune wrote"));
        Assert.That(Directory.Exists(Dir.File("run")), Is.False, "nothing written");

        Directory.CreateDirectory(nowhere);
        var eval = Cli("eval", "--model", ModelDir, "--dataset", DataFile, "--context-length", "16", "--adapter", nowhere);
        Assert.That(eval.Code, Is.EqualTo(Program.ExitUserError));
        Assert.That(eval.Err, Does.StartWith($"error: --adapter '{nowhere}': no adapter_config.json there"));
        Assert.That(eval.Err.Trim().Split('\n'), Has.Length.EqualTo(1));

        var run = Cli(Finetune("trained"));
        Assert.That(run.Code, Is.Zero, run.Err);
        var outputDir = Cli("generate", "--model", ModelDir, "--prompt", "x", "--adapter", Dir.File("trained"));
        Assert.That(outputDir.Err, Does.StartWith($"error: --adapter '{Dir.File("trained")}': no adapter_config.json there; it looks like a run's output directory, whose adapter is '{Path.Combine(Dir.File("trained"), "adapter")}'"));
    }

    [TestCase("--max-new-tokens", "0", "--max-new-tokens must be at least 1, got 0")]
    [TestCase("--max-new-tokens", "5000", "the prompt (")]
    [TestCase("--temperature", "-1", "--temperature must be 0 (greedy) or a positive number, got -1")]
    [TestCase("--temperature", "NaN", "--temperature must be 0 (greedy) or a positive number, got NaN")]
    [TestCase("--top-p", "0", "--top-p must be above 0 and at most 1, got 0")]
    [TestCase("--top-p", "1.5", "--top-p must be above 0 and at most 1, got 1.5")]
    public void Generate_checks_its_limits_before_it_prints_anything(string flag, string value, string message)
    {
        string tiny = Dir.File("tiny");
        Assert.That(Cli("init-model", "--preset", "tiny", "--out", tiny).Code, Is.Zero);
        var (code, output, error) = Cli("generate", "--model", tiny, "--prompt", "Hello there", "--device", "cpu", flag, value);
        Assert.That(code, Is.EqualTo(Program.ExitUserError));
        Assert.That(output, Is.Empty, "no part of the answer before the error");
        Assert.That(error, Does.StartWith($"error: {message}"));
        Assert.That(error.Trim().Split('\n'), Has.Length.EqualTo(1));
    }

    [Test]
    public void Generate_refuses_a_prompt_longer_than_theModelDirs_context_before_printing_it()
    {
        string tiny = Dir.File("tiny");
        Assert.That(Cli("init-model", "--preset", "tiny", "--out", tiny).Code, Is.Zero);
        string prompt = string.Concat(Enumerable.Repeat(" one", 1100)); // a token per word, past tiny's 1024 positions
        var (code, output, error) = Cli("generate", "--model", tiny, "--prompt", prompt, "--max-new-tokens", "1", "--device", "cpu");
        Assert.That(code, Is.EqualTo(Program.ExitUserError));
        Assert.That(output, Is.Empty);
        Assert.That(error, Does.StartWith("error: the prompt (1100 tokens) plus --max-new-tokens (1) is more than the model's 1024 positions; shorten the prompt"));
    }
}
