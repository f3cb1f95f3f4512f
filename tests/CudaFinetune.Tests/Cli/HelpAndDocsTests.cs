using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using CudaFinetune.Cli;
using CudaFinetune.Data;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cli;

/// <summary>Every verb's --help, and docs/cli.md against the flags the verbs really have.</summary>
[TestFixture]
public sealed partial class HelpAndDocsTests
{
    private static string Help(params string[] verb)
    {
        var (code, output, _) = CliRuns.Run([.. verb, "--help"]);
        Assert.That(code, Is.Zero);
        return output;
    }

    [TestCaseSource(nameof(VerbPaths))]
    public void Help_shows_each_default_once(string[] verb)
    {
        foreach (string line in Help(verb).Split('\n'))
        {
            Assert.That(Regex.Count(line, @"\[default: "), Is.LessThanOrEqualTo(1), line);
        }
    }

    [TestCase("finetune")]
    [TestCase("eval")]
    [TestCase("generate")]
    [TestCase("bench", "step")]
    public void Help_lists_every_training_device(params string[] verb)
    {
        string device = Help(verb).Split('\n').Single(l => l.TrimStart().StartsWith("--device", StringComparison.Ordinal));
        Assert.That(device, Does.Contain("auto").And.Contain("cpu").And.Contain("cuda-emulated"));
    }

    /// <summary>Each flag of each verb is in the verb's section of docs/cli.md, on a line that also gives its default.</summary>
    [TestCaseSource(nameof(VerbPaths))]
    public void The_cli_doc_lists_every_flag_with_its_default(string[] verb)
    {
        string section = Section(verb[0]);
        foreach (Option option in Verb(verb).Options)
        {
            var lines = section.Split('\n').Where(l => Regex.IsMatch(l, $@"(?<![\w-]){Regex.Escape(option.Name)}(?![\w-])")).ToList();
            Assert.That(lines, Is.Not.Empty, $"docs/cli.md's `{verb[0]}` section does not mention {option.Name}");
            if (Default(option) is { } value)
            {
                Assert.That(lines.Any(l => l.Contains(value, StringComparison.Ordinal)), Is.True, $"{option.Name}: no line gives its default {value}");
            }
        }
    }

    [Test]
    public void The_cli_doc_lists_every_dataset_format_and_no_longer_calls_export_unbuilt()
    {
        string datasets = Doc()[Doc().IndexOf("### Datasets", StringComparison.Ordinal)..];
        foreach (string format in DatasetLoader.Formats)
        {
            Assert.That(datasets, Does.Contain($"\n| {format} |"), format);
        }
        Assert.That(datasets, Does.Contain("`.csv`").And.Contain("Chat data needs a tokenizer").And.Contain("`tokenizer.model`"));
        Assert.That(Doc(), Does.Not.Contain("not built yet, `export`"));
        Assert.That(Section("finetune"), Does.Contain("docs/resume.md"));
    }

    /// <summary>The default a verb's help shows: System.CommandLine's own, or the "[default: X]" a description carries.</summary>
    private static string? Default(Option option)
    {
        if (option.HasDefaultValue)
        {
            return Convert.ToString(option.GetDefaultValue(), CultureInfo.InvariantCulture) is { Length: > 0 } text && text != "False" ? text : null;
        }
        return DefaultInDescription().Match(option.Description ?? "") is { Success: true } match ? match.Groups[1].Value : null;
    }

    private static string Doc() => File.ReadAllText(RepositoryFiles.Path("docs", "cli.md"));

    /// <summary>The text under "## `verb`" up to the next "## ".</summary>
    private static string Section(string verb)
    {
        string doc = Doc();
        int start = doc.IndexOf($"\n## `{verb}`", StringComparison.Ordinal);
        Assert.That(start, Is.GreaterThanOrEqualTo(0), $"docs/cli.md has no `{verb}` section");
        int end = doc.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        return end < 0 ? doc[start..] : doc[start..end];
    }

    private static Command Verb(string[] path) =>
        path.Aggregate((Command)Program.CreateRootCommand(), (command, name) => command.Subcommands.Single(c => c.Name == name));

    private static IEnumerable<TestCaseData> VerbPaths()
    {
        static IEnumerable<string[]> Walk(Command command, string[] path) =>
            (path.Length > 0 && command.Action is not null ? [path] : Enumerable.Empty<string[]>())
                .Concat(command.Subcommands.SelectMany(sub => Walk(sub, [.. path, sub.Name])));
        return Walk(Program.CreateRootCommand(), []).Select(path => new TestCaseData((object)path).SetName(string.Join(' ', path)));
    }

    [GeneratedRegex(@"\[default: ([^\]]+)\]")]
    private static partial Regex DefaultInDescription();
}
