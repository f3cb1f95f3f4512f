using System.CommandLine;
using CudaFinetune.Cli;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cli;

/// <summary>
/// Command-line mistakes caught while parsing: exit code 2, exactly one "error:" line per mistake that says what the
/// flag takes or what was probably meant, then the usage hint for the verb.
/// </summary>
[TestFixture]
public sealed class ParseErrorTests
{
    private static (int Code, string Out, string[] Errors) Cli(params string[] args)
    {
        var (code, output, error) = CliRuns.Run(args);
        return (code, output, error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    [TestCase(new[] { "finetune", "--shuffle", "maybe" }, "--shuffle takes true or false, got 'maybe'", "finetune")]
    [TestCase(new[] { "finetune", "--shuffle=maybe" }, "--shuffle takes true or false, got 'maybe'", "finetune")]
    [TestCase(new[] { "finetune", "--lrr", "1" }, "unknown option '--lrr'; did you mean '--lr'?", "finetune")]
    [TestCase(new[] { "finetune", "--seed", "-1" }, "--seed takes a whole number from 0 to 18446744073709551615, got '-1'", "finetune")]
    [TestCase(new[] { "finetune", "--batch-size", "2.5" }, "--batch-size takes a whole number from -2147483648 to 2147483647, got '2.5'", "finetune")]
    [TestCase(new[] { "finetune", "--lr", "abc" }, "--lr takes a number such as 0.5 or 2e-4, got 'abc'", "finetune")]
    [TestCase(new[] { "finetune", "--seed" }, "--seed needs a value: a whole number from 0 to 18446744073709551615", "finetune")]
    [TestCase(new[] { "finetune", "--lr", "1", "--lr", "2" }, "--lr was given 2 times ('1', '2'); give it once", "finetune")]
    [TestCase(new[] { "finetune", "--device", "gpu" }, "--device takes auto, cpu, cuda or cuda-emulated, got 'gpu'; did you mean 'cpu'?", "finetune")]
    [TestCase(new[] { "finetune", "extra" }, "unexpected argument 'extra': finetune takes only --flags", "finetune")]
    [TestCase(new[] { "finetune", "--bogus", "1" }, "unknown option '--bogus'", "finetune")]
    [TestCase(new[] { "export", "--checkpoint", "c", "--format", "peft", "--out", "o", "--max-shard-bytes", "1e3" },
        "--max-shard-bytes takes a whole number from -9223372036854775808 to 9223372036854775807, got '1e3'", "export")]
    [TestCase(new[] { "verify-kernels", "--seed", "x" }, "--seed takes a whole number from -2147483648 to 2147483647, got 'x'", "verify-kernels")]
    [TestCase(new[] { "bench", "attention", "--device", "cpu" }, "--device takes auto, cuda or cuda-emulated, got 'cpu'", "bench attention")]
    [TestCase(new[] { "bench", "step", "--batch-size", "0" }, "--batch-size must be at least 1", "bench step")]
    [TestCase(new[] { "generate", "--model", "m", "--prompt", "Hello", "world" },
        "unexpected argument 'world' after --prompt Hello (put quotes around a value that contains spaces)", "generate")]
    [TestCase(new[] { "init-model", "--preset", "tiny" }, "init-model needs --out (Directory to write config.json and model.safetensors into)", "init-model")]
    [TestCase(new[] { "finetun" }, "unknown command 'finetun'; did you mean 'finetune'?", null)]
    [TestCase(new[] { "checkpoint", "verif" }, "unknown command 'verif'; did you mean 'verify'?", "checkpoint")]
    [TestCase(new[] { "bench" }, "bench needs a command: attention or step", "bench")]
    public void A_mistake_gets_one_error_line_and_the_verbs_usage_hint(string[] args, string message, string? verb)
    {
        var (code, output, errors) = Cli(args);
        Assert.That(code, Is.EqualTo(Program.ExitUserError));
        Assert.That(output, Is.Empty);
        string hint = verb is null ? "run 'CudaFinetune --help' for usage" : $"run 'CudaFinetune {verb} --help' for usage";
        Assert.That(errors, Is.EqualTo(new[] { $"error: {message}", hint }));
    }

    [Test]
    public void A_missing_command_or_argument_names_what_is_needed()
    {
        Assert.That(Cli().Errors[0], Does.StartWith("error: CudaFinetune needs a command: finetune, eval, generate"));
        Assert.That(Cli("bogus").Errors, Has.Length.EqualTo(2).And.Some.StartsWith("error: unknown command 'bogus'; the commands are finetune, eval"));
        Assert.That(Cli("checkpoint", "verify").Errors[0], Does.StartWith("error: checkpoint verify needs DIR ("));
    }

    [Test]
    public void Each_mistake_gets_its_own_line_in_command_line_order()
    {
        var (code, _, errors) = Cli("finetune", "--lrr", "1", "--seed", "-1", "--shufle", "maybe", "--overwrite", "no");
        Assert.That(code, Is.EqualTo(Program.ExitUserError));
        Assert.That(errors, Is.EqualTo(new[]
        {
            "error: unknown option '--lrr'; did you mean '--lr'?",
            "error: --seed takes a whole number from 0 to 18446744073709551615, got '-1'",
            "error: unknown option '--shufle'; did you mean '--shuffle'?",
            "error: --overwrite takes true or false, got 'no'",
            "run 'CudaFinetune finetune --help' for usage",
        }));
    }

    /// <summary>Every verb's every option that is not free text, given a value of the wrong kind: one line naming the option, what it takes and the value.</summary>
    [TestCaseSource(nameof(TypedOptions))]
    public void Every_typed_option_of_every_verb_says_what_it_takes(string[] verb, string option, string[] required)
    {
        var (code, _, errors) = Cli([.. verb, .. required, option, "x-bad"]);
        Assert.That(code, Is.EqualTo(Program.ExitUserError));
        Assert.That(errors, Has.Length.EqualTo(2), string.Join("\n", errors));
        Assert.That(errors[0], Does.StartWith($"error: {option} takes ").And.Contain("got 'x-bad'"));
        Assert.That(errors[1], Is.EqualTo($"run 'CudaFinetune {string.Join(' ', verb)} --help' for usage"));
    }

    /// <summary>Every verb's every option, with one letter doubled, is suggested back.</summary>
    [TestCaseSource(nameof(AllOptions))]
    public void A_misspelt_option_of_every_verb_is_suggested(string[] verb, string option, string[] required)
    {
        string typo = option + option[^1];
        var (code, _, errors) = Cli([.. verb, .. required, typo]);
        Assert.That(code, Is.EqualTo(Program.ExitUserError));
        Assert.That(errors[0], Is.EqualTo($"error: unknown option '{typo}'; did you mean '{option}'?"));
    }

    private static IEnumerable<TestCaseData> TypedOptions() =>
        Options().Where(o => o.Option.ValueType != typeof(string) || o.Option.CompletionSources.Count > 0).Select(o => o.Data);

    private static IEnumerable<TestCaseData> AllOptions() => Options().Select(o => o.Data);

    /// <summary>(verb path, option, the required options and arguments filled in) for every option that takes a value or is a flag of a verb.</summary>
    private static IEnumerable<(Option Option, TestCaseData Data)> Options()
    {
        foreach (var (path, command) in Verbs(Program.CreateRootCommand(), []))
        {
            var required = command.Options.Where(o => o.Required).SelectMany(o => new[] { o.Name, "req" })
                .Concat(command.Arguments.Select(_ => "arg")).ToArray();
            foreach (Option option in command.Options.Where(o => o.Arity.MaximumNumberOfValues > 0 && !o.Required))
            {
                yield return (option, new TestCaseData(path, option.Name, required).SetName($"{string.Join(' ', path)} {option.Name}"));
            }
        }
    }

    private static IEnumerable<(string[] Path, Command Command)> Verbs(Command command, string[] path)
    {
        if (path.Length > 0 && command.Action is not null)
        {
            yield return (path, command);
        }
        foreach (Command sub in command.Subcommands)
        {
            foreach (var verb in Verbs(sub, [.. path, sub.Name]))
            {
                yield return verb;
            }
        }
    }
}
