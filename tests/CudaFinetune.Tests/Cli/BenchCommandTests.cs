using System.Globalization;
using CudaFinetune.Cli;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cli;

/// <summary>bench attention and bench step at sizes the emulator and the CPU finish in seconds: they run and report every result line.</summary>
[TestFixture]
public sealed class BenchCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRuns.Run(args);

    private static double Result(string output, string name)
    {
        string line = output.Split('\n').Single(l => l.StartsWith($"result {name} ", StringComparison.Ordinal));
        return double.Parse(line.Split(' ')[2], CultureInfo.InvariantCulture);
    }

    [Test]
    public void Attention_on_the_emulator_reports_forward_backward_and_both()
    {
        var (code, output, error) = Run("bench", "attention", "--device", "cuda-emulated", "--batch", "1", "--seq-len", "70", "--heads", "2", "--kv-heads", "1", "--head-dim", "32", "--repeat", "1");
        Assert.That(code, Is.Zero, error);
        Assert.That(output, Does.Contain("bench attention on the kernel emulator: batch 1, seq 70, heads 2/1, head dim 32"));
        foreach (string name in new[] { "attention_forward_tflops", "attention_backward_tflops", "attention_forward_backward_tflops" })
        {
            Assert.That(Result(output, name), Is.GreaterThanOrEqualTo(0), name);
        }
    }

    [Test]
    public void Step_on_the_cpu_reports_tokens_per_second_and_peak_memory()
    {
        var (code, output, error) = Run("bench", "step", "--device", "cpu", "--preset", "tiny", "--context-length", "32", "--steps", "1");
        Assert.That(code, Is.Zero, error);
        Assert.That(Result(output, "step_tokens_per_s"), Is.GreaterThan(0));
        Assert.That(Result(output, "step_peak_memory_bytes"), Is.GreaterThan(1 << 20));
    }

    [Test]
    public void Heads_that_do_not_group_are_a_user_error()
    {
        var (code, _, error) = Run("bench", "attention", "--device", "cuda-emulated", "--heads", "6", "--kv-heads", "4");
        Assert.That(code, Is.EqualTo(Program.ExitUserError));
        Assert.That(error, Does.StartWith("error: --heads (6) must be a multiple of --kv-heads (4)"));
    }
}
