using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cli;
using CudaFinetune.HuggingFace;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cli;

/// <summary>Runs the CLI in-process through <see cref="Program.Run"/>, as the executable would.</summary>
public sealed class InitModelCommandTests : TempDirectoryFixture
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => CliRuns.Run(args);

    private static byte[] Bytes(string directory, string file) => File.ReadAllBytes(Path.Combine(directory, file));

    [Test]
    public void Same_seed_gives_byte_identical_files_and_another_seed_different_weights()
    {
        string a = Dir.File("a"), b = Dir.File("b"), c = Dir.File("c");
        var first = Cli("init-model", "--preset", "tiny", "--seed", "5", "--out", a);
        Assert.That(first.Code, Is.Zero, first.Err);
        Assert.That(first.Out, Does.Contain(a).And.Contain("6,802,176 parameters").And.Contain("bytes"));
        Assert.That(Cli("init-model", "--preset", "tiny", "--seed", "5", "--out", b).Code, Is.Zero);
        Assert.That(Cli("init-model", "--preset", "tiny", "--seed", "6", "--out", c).Code, Is.Zero);

        Assert.That(Directory.GetFiles(a).Select(Path.GetFileName), Is.EquivalentTo(new[] { "config.json", "model.safetensors", "tokenizer_config.json" }));
        Assert.That(Bytes(b, "config.json"), Is.EqualTo(Bytes(a, "config.json")));
        Assert.That(Bytes(b, "model.safetensors"), Is.EqualTo(Bytes(a, "model.safetensors")));
        Assert.That(Bytes(c, "config.json"), Is.EqualTo(Bytes(a, "config.json")));
        Assert.That(Bytes(c, "model.safetensors"), Is.Not.EqualTo(Bytes(a, "model.safetensors")));
    }

    [Test]
    public void Written_model_loads_back_as_the_preset()
    {
        string dir = Dir.File("m");
        Assert.That(Cli("init-model", "--preset", "tiny", "--out", dir, "--dtype", "bf16").Code, Is.Zero);
        using var backend = new CpuBackend(threads: 1);
        var (config, weights) = HfModelDirectory.Load(dir, backend);
        using (weights)
        {
            LlamaConfig tiny = LlamaPresets.Tiny;
            Assert.That(config, Is.EqualTo(tiny with { NumKeyValueHeads = tiny.KeyValueHeads, HeadDim = tiny.HeadSize, TorchDtype = "bfloat16" }));
            // embedding 50257·128, two layers of (2·128 norms + q 128·128 + k, v 64·128 + o 128·128 + gate, up, down 352·128), final norm 128
            Assert.That(LlamaWeights.CountParameters(weights), Is.EqualTo(50257 * 128 + 2 * (256 + 16384 + 2 * 8192 + 16384 + 3 * 45056) + 128));
            Assert.That(CudaFinetune.Tokenizers.TokenizerCatalog.TryLoadForModel(dir)?.Name, Is.EqualTo("gpt2"), "tiny records the GPT-2 tokenizer");
        }
    }

    [Test]
    public void Unknown_preset_is_a_user_error()
    {
        var (code, _, err) = Cli("init-model", "--preset", "huge", "--out", Dir.File("m"));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.StartWith("error: ").And.Contain("huge").And.Contain("tiny, bench-tiny"));
        Assert.That(Directory.Exists(Dir.File("m")), Is.False);
    }

    [Test]
    public void Non_empty_out_is_refused_without_force_and_nothing_is_touched()
    {
        string keep = Dir.File("notes.txt");
        File.WriteAllText(keep, "precious");
        var (code, _, err) = Cli("init-model", "--preset", "tiny", "--out", Dir.Path);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.StartWith("error: ").And.Contain("not empty").And.Contain("--force"));
        Assert.That(Directory.GetFiles(Dir.Path), Is.EqualTo(new[] { keep }));

        var forced = Cli("init-model", "--preset", "tiny", "--out", Dir.Path, "--force");
        Assert.That(forced.Code, Is.Zero, forced.Err);
        Assert.That(File.ReadAllText(keep), Is.EqualTo("precious"));
        Assert.That(File.Exists(Dir.File("model.safetensors")), Is.True);
    }

    [TestCase(new[] { "init-model", "--preset", "tiny" }, "--out")]
    [TestCase(new[] { "init-model", "--preset", "tiny", "--out", "x", "--seed", "-1" }, "--seed")]
    [TestCase(new[] { "init-model", "--preset", "tiny", "--out", "x", "--dtype", "f8" }, "f8")]
    [TestCase(new[] { "init-model", "--bogus" }, "--bogus")]
    [TestCase(new string[0], "command")]
    public void Bad_command_lines_are_user_errors(string[] args, string mentioned)
    {
        var (code, _, err) = Cli(args);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.StartWith("error: ").And.Contain(mentioned));
    }

    [Test]
    public void Help_describes_the_tool_and_the_verb()
    {
        var root = Cli("--help");
        Assert.That(root.Code, Is.Zero);
        Assert.That(root.Out, Does.Contain("fine-tunes Llama").And.Contain("init-model"));
        var verb = Cli("init-model", "--help");
        Assert.That(verb.Code, Is.Zero);
        Assert.That(verb.Out, Does.Contain("--preset").And.Contain("--seed").And.Contain("--force"));
    }
}
