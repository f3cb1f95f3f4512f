using System.Text.Json;
using CudaFinetune.Cli;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cli;

/// <summary>finetune, eval and generate through <see cref="Program.Run"/>, as the executable runs them.</summary>
[TestFixture]
public sealed class FinetuneCommandTests : LearnableTaskFixture
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => CliRuns.Run(args);

    /// <summary>A finetune command line; --context-length 16 and --batch-size 4 unless <paramref name="extra"/> sets them (a flag may be given once).</summary>
    private string[] Finetune(params string[] extra)
    {
        var args = new List<string> { "finetune", "--model", ModelDir, "--dataset", DataFile, "--output-dir", Dir.File("run") };
        if (!extra.Contains("--context-length"))
        {
            args.AddRange(["--context-length", "16"]);
        }
        if (!extra.Contains("--batch-size"))
        {
            args.AddRange(["--batch-size", "4"]);
        }
        return [.. args, .. extra];
    }

    [Test]
    public void Finetune_then_eval_with_the_adapter_reports_a_lower_loss()
    {
        var (code, output, error) = Cli(Finetune("--lora-targets", "all-linear", "--lr", "0.01", "--num-epochs", "6", "--scheduler", "constant", "--eval-every", "10"));
        Assert.That(code, Is.Zero, error);
        Assert.That(output, Does.Contain("eval").And.Contain("finetune: done"));
        string adapter = Path.Combine(Dir.File("run"), "adapter");
        string[] evalArgs = ["eval", "--model", ModelDir, "--dataset", DataFile, "--context-length", "16"];
        var before = Cli(evalArgs);
        var after = Cli([.. evalArgs, "--adapter", adapter]);
        Assert.That(before.Code, Is.Zero, before.Err);
        Assert.That(after.Code, Is.Zero, after.Err);
        Assert.That(Loss(after.Out), Is.LessThan(0.6 * Loss(before.Out)), $"{before.Out} → {after.Out}");
    }

    private static double Loss(string evalOutput)
    {
        string s = evalOutput[(evalOutput.IndexOf("loss ", StringComparison.Ordinal) + 5)..];
        return double.Parse(s[..s.IndexOf(' ', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Test]
    public void Flags_override_a_llama_recipes_config_file_and_run_json_records_the_result()
    {
        string config = Dir.File("train.yaml");
        File.WriteAllText(config, "batch_size_training: 2\nnum_epochs: 1\nlr: 0.003\nuse_peft: true\nlora_config:\n  r: 4\n  target_modules: [q_proj, k_proj]\n");
        var (code, _, error) = Cli(Finetune("--config", config, "--batch-size", "3", "--max-steps", "2"));
        Assert.That(code, Is.Zero, error);
        using var run = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Dir.File("run"), "run.json")));
        var resolved = run.RootElement.GetProperty("config");
        Assert.That(resolved.GetProperty("batch_size").GetInt32(), Is.EqualTo(3), "the flag wins over the file");
        Assert.That(resolved.GetProperty("lr").GetDouble(), Is.EqualTo(0.003));
        Assert.That(resolved.GetProperty("lora_r").GetInt32(), Is.EqualTo(4));
        Assert.That(resolved.GetProperty("lora_targets").GetString(), Is.EqualTo("q_proj,k_proj"));
        Assert.That(File.ReadAllLines(Path.Combine(Dir.File("run"), "metrics.jsonl")).Count(l => l.Contains("\"loss\"", StringComparison.Ordinal)), Is.EqualTo(2));
    }

    [Test]
    public void Missing_dataset_file_is_a_user_error()
    {
        var (code, _, error) = Cli("finetune", "--model", ModelDir, "--dataset", Dir.File("nope.jsonl"), "--output-dir", Dir.File("run"), "--context-length", "16");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(error, Does.StartWith("error: ").And.Contain("nope.jsonl"));
        Assert.That(error.Trim().Split('\n'), Has.Length.EqualTo(1), "one message, no stack trace");
    }

    [Test]
    public void Malformed_json_line_is_reported_with_its_line_number()
    {
        string bad = Dir.File("bad.jsonl");
        File.WriteAllLines(bad, ["{\"input_ids\": [1, 2, 3]}", "{\"input_ids\": [4, 5, 6]}", "{\"input_ids\": [7, 8,", "{\"input_ids\": [9]}"]);
        var (code, _, error) = Cli("finetune", "--model", ModelDir, "--dataset", bad, "--output-dir", Dir.File("run"), "--context-length", "2");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(error, Does.StartWith("error: ").And.Contain("line 3"));
    }

    [TestCase("--bogus", "1", "--bogus")]
    [TestCase("--lr", "-0.001", "--lr")]
    [TestCase("--lr", "abc", "abc")]
    [TestCase("--context-length", "100000", "64")]
    [TestCase("--batching", "zigzag", "--batching")]
    [TestCase("--peft", "qlora", "--peft")]
    public void Bad_flags_and_impossible_values_exit_with_code_2_and_one_clear_message(string flag, string value, string mentioned)
    {
        var (code, output, error) = Cli(Finetune(flag, value));
        Assert.That(code, Is.EqualTo(2), output + error);
        Assert.That(error, Does.StartWith("error: ").And.Contain(mentioned));
        Assert.That(error, Does.Not.Contain("   at "), "no stack trace");
        Assert.That(Directory.Exists(Dir.File("run")) && Directory.EnumerateFiles(Dir.File("run")).Any(), Is.False, "nothing written");
    }

    [Test]
    public void Generate_continues_a_prompt_and_refuses_a_model_without_a_tokenizer()
    {
        string tiny = Dir.File("tiny");
        Assert.That(Cli("init-model", "--preset", "tiny", "--out", tiny).Code, Is.Zero);
        var (code, output, error) = Cli("generate", "--model", tiny, "--prompt", "Hello", "--max-new-tokens", "5");
        Assert.That(code, Is.Zero, error);
        Assert.That(output, Does.StartWith("Hello"));
        Assert.That(output.Trim().Length, Is.GreaterThan("Hello".Length));
        var noTokenizer = Cli("generate", "--model", ModelDir, "--prompt", "Hello");
        Assert.That(noTokenizer.Code, Is.EqualTo(2));
        Assert.That(noTokenizer.Err, Does.Contain("tokenizer"));
    }

    [TestCase("finetune")]
    [TestCase("eval")]
    [TestCase("generate")]
    [TestCase("init-model")]
    public void Every_command_has_help(string command)
    {
        var (code, output, _) = Cli(command, "--help");
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.Contain("Usage:").And.Contain("--"));
    }

    [Test]
    public void Finetune_on_cuda_refuses_a_model_its_kernels_cannot_run_before_writing_anything()
    {
        var (code, _, error) = Cli(Finetune("--device", "cuda"));
        Assert.That(code, Is.EqualTo(Program.ExitUserError));
        Assert.That(error, Does.StartWith("error: --device cuda: the attention kernels take head sizes 32, 64 and 128; this model's is 8"));
        Assert.That(Directory.Exists(Dir.File("run")) && Directory.EnumerateFileSystemEntries(Dir.File("run")).Any(), Is.False, "nothing is written");
    }

    [Test]
    public void Finetune_on_cuda_without_a_gpu_is_a_user_error()
    {
        TestDevices.RequireNoGpu();
        (ModelDir, _) = LearnableTask.Write(Dir.File("kernel-sized"), LearnableTask.KernelSizedConfig);
        var (code, _, error) = Cli(Finetune("--device", "cuda"));
        Assert.That(code, Is.EqualTo(Program.ExitUserError));
        Assert.That(error, Does.StartWith("error: no CUDA driver").Or.StartWith("error: the CUDA driver offers no usable GPU"));
    }

}

/// <summary>The built-in demo's plumbing, shortened with --max-steps (the full demo runs in CI's smoke step, not here).</summary>
[TestFixture]
public sealed class DemoTests
{
    [Test]
    public void Finetune_without_arguments_runs_the_demo_from_the_embedded_dataset()
    {
        using var dir = new TempDirectory();
        var (code, text, error) = CliRuns.Run(["finetune", "--output-dir", dir.File("demo"), "--max-steps", "6", "--eval-every", "3"]);
        Assert.That(code, Is.Zero, error);
        Assert.That(text, Does.Contain("held-out review:").And.Contain("before fine-tuning:").And.Contain("after fine-tuning:").And.Contain("eval loss"));
        foreach (string file in new[] { "base-model/config.json", "base-model/tokenizer_config.json", "demo-sentiment.jsonl", "run.json", "metrics.jsonl", "loss.png", "adapter/adapter_model.safetensors" })
        {
            Assert.That(File.Exists(Path.Combine(dir.File("demo"), file)), Is.True, file);
        }
        // Running it again replaces the demo's own output instead of refusing.
        var again = CliRuns.Run(["finetune", "--output-dir", dir.File("demo"), "--max-steps", "1"]);
        Assert.That(again.Code, Is.Zero, again.Err);
    }
}
