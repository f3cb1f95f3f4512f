using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using CudaFinetune.Training;

namespace CudaFinetune.Config;

/// <summary>What a resumed run may do with an option that differs from the checkpoint's.</summary>
public enum ResumeRule
{
    /// <summary>Changes silently (where files are, how long to wait): the results do not depend on it.</summary>
    Free,

    /// <summary>Changes, with a warning naming the old and new value (the schedule, how long to train, saving).</summary>
    MayChange,

    /// <summary>Refused: the saved state would be meaningless under another value (the model's shape, batches, seed).</summary>
    MustMatch,
}

/// <summary>
/// A fine-tune option as every place that handles it sees it (<see cref="Property"/>: the <see cref="FinetuneOptions"/> property it sets; several keys may set one), declared once in <see cref="RunConfigKeys.All"/>:
/// <list type="bullet">
/// <item>a config file accepts it as <see cref="Name"/> (kebab-case, the flag without dashes), as its snake_case, and
/// as <see cref="LlamaRecipes"/> where llama-recipes' <c>train_config</c> has the setting;</item>
/// <item>the CLI makes <see cref="Flag"/> from it (typed by <see cref="OptionKey{T}"/>'s T, limited to
/// <see cref="Choices"/> when there are some, described by <see cref="Meaning"/> and <see cref="DefaultText"/>);</item>
/// <item>run.json and a checkpoint's manifest save it under its snake_case name (<see cref="Save"/>);</item>
/// <item>a resume compares it (<see cref="Compared"/>) and follows <see cref="Resume"/>;</item>
/// <item>docs/cli.md's option table is <see cref="RunConfigFile.OptionTable"/>, checked by a test.</item>
/// </list>
/// Aliases (llama-recipes spellings whose meaning depends on other keys: <c>use_peft</c>, <c>run_validation</c> …) have
/// no flag and are not saved; <see cref="RunConfigFile"/> resolves them with the keys they combine with.
/// </summary>
public abstract record OptionKey(string Name, string? Flag, string? LlamaRecipes, string Meaning, string Property)
{
    public string Snake => Name.Replace('-', '_');

    /// <summary>The values a flag or key accepts, when it is one of a few names; null for free values.</summary>
    public IReadOnlyList<string>? Choices { get; init; }

    /// <summary>What the docs show after the flag (<c>N</c>, <c>DIR</c>); null: the value's kind decides.</summary>
    public string? ValueName { get; init; }

    /// <summary>More than <see cref="Meaning"/> for docs/cli.md only (--help shows the meaning alone).</summary>
    public string? Details { get; init; }

    public ResumeRule Resume { get; init; } = ResumeRule.Free;

    /// <summary>Whether the value is saved with a run (run.json, checkpoints); aliases and --overwrite are not.</summary>
    public bool Saved { get; init; } = true;

    /// <summary>Writes the option's value under its snake_case name.</summary>
    public abstract void Save(Utf8JsonWriter writer, FinetuneOptions options);

    /// <summary>The value a resume compares, as text (also what its messages show); null when it is not compared.</summary>
    public abstract string? Compared(FinetuneOptions options);

    /// <summary>The default as text (what --help and the docs show); null when there is none to show.</summary>
    public abstract string? DefaultText { get; }

    /// <summary>Sets the option from a config file's value; null for aliases resolved with other keys.</summary>
    internal abstract Func<FinetuneOptions, ConfigValue, FinetuneOptions>? Set { get; }

    /// <summary>Every top-level spelling, kebab first; the llama-recipes name only where it differs and is top-level.</summary>
    public IEnumerable<string> Spellings
    {
        get
        {
            yield return Name;
            if (Snake != Name)
            {
                yield return Snake;
            }
            if (LlamaRecipes is { } lr && lr != Snake && !lr.Contains('.', StringComparison.Ordinal))
            {
                yield return LlamaRecipes;
            }
        }
    }
}

/// <summary>
/// An option whose value is a <typeparamref name="T"/> (int, ulong, double, bool or string — what a flag parses).
/// <see cref="Get"/> and <see cref="With"/> read and set it on <see cref="FinetuneOptions"/>; <see cref="Read"/> parses a
/// config file's value (null: an alias, resolved by <see cref="RunConfigFile"/>). Options held as enums are declared as
/// strings over their names, so a flag and a file take the same words.
/// </summary>
public sealed record OptionKey<T> : OptionKey
{
    internal OptionKey(string name, string? flag, string? llamaRecipes, string meaning, Func<FinetuneOptions, T> get, Func<FinetuneOptions, T, FinetuneOptions> with,
        Func<ConfigValue, T>? read, string property)
        : base(name, flag, llamaRecipes, meaning, property)
    {
        Get = get;
        With = with;
        Read = read;
    }

    /// <summary>The option's value in <paramref name="options"/>.</summary>
    public Func<FinetuneOptions, T> Get { get; }

    /// <summary>A copy of the options with this option set.</summary>
    public Func<FinetuneOptions, T, FinetuneOptions> With { get; }

    /// <summary>Reads a config file's value; null for a key that a config file resolves together with others.</summary>
    internal Func<ConfigValue, T>? Read { get; init; }

    private static readonly FinetuneOptions Defaults = new();

    /// <summary>Replaces the compared text (e.g. a path made absolute, or "-" where the option does not apply).</summary>
    public Func<FinetuneOptions, string>? CompareAs { get; init; }

    internal override Func<FinetuneOptions, ConfigValue, FinetuneOptions>? Set => Read is { } read ? (o, v) => With(o, read(v)) : null;

    public override void Save(Utf8JsonWriter writer, FinetuneOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        object? value = Get(options);
        switch (value)
        {
            case int i: writer.WriteNumber(Snake, i); break;
            case ulong u: writer.WriteNumber(Snake, u); break;
            case double d: writer.WriteNumber(Snake, d); break;
            case bool b: writer.WriteBoolean(Snake, b); break;
            default: writer.WriteString(Snake, (string?)value); break;
        }
    }

    public override string? Compared(FinetuneOptions options) => Resume == ResumeRule.Free ? null : CompareAs?.Invoke(options) ?? Text(Get(options)) ?? "-";

    public override string? DefaultText => Text(Get(Defaults));

    /// <summary>Round-trip digits, with an exponent written as people do: 1e-8, not 1E-08.</summary>
    private static string Number(double value)
    {
        string text = value.ToString("R", CultureInfo.InvariantCulture);
        int e = text.IndexOf('E', StringComparison.Ordinal);
        return e < 0 ? text : $"{text[..e]}e{int.Parse(text.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture)}";
    }

    /// <summary>A value as the docs, --help and resume messages show it: invariant, round-trip numbers; null for none.</summary>
    internal static string? Text(T value) => value switch
    {
        double d => Number(d),
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value?.ToString(),
    };
}

/// <summary>Declares options: each factory names the property from its getter, so the property is written once.</summary>
internal static partial class OptionDeclarations
{
    /// <summary>Text that is always set; a config file's value is taken by <paramref name="read"/> (default: a string, not null).</summary>
    public static OptionKey<string> Text(string name, string? llamaRecipes, string meaning, Func<FinetuneOptions, string> get,
        Func<FinetuneOptions, string, FinetuneOptions> with, Func<ConfigValue, string>? read = null, [CallerArgumentExpression(nameof(get))] string getter = "")
        => new(name, "--" + name, llamaRecipes, meaning, get, with, read ?? (v => v.String()), PropertyOf(getter)) { ValueName = "TEXT" };

    /// <summary>Text that may be unset (null); a config file's empty or null value unsets it unless <paramref name="read"/> says otherwise.</summary>
    public static OptionKey<string?> OptionalText(string name, string? llamaRecipes, string meaning, Func<FinetuneOptions, string?> get,
        Func<FinetuneOptions, string?, FinetuneOptions> with, Func<ConfigValue, string?>? read = null, [CallerArgumentExpression(nameof(get))] string getter = "")
        => new(name, "--" + name, llamaRecipes, meaning, get, with, read ?? (v => v.NullableString()), PropertyOf(getter)) { ValueName = "TEXT" };

    public static OptionKey<int> Integer(string name, string? llamaRecipes, string meaning, Func<FinetuneOptions, int> get,
        Func<FinetuneOptions, int, FinetuneOptions> with, [CallerArgumentExpression(nameof(get))] string getter = "")
        => new(name, "--" + name, llamaRecipes, meaning, get, with, v => v.Int(), PropertyOf(getter)) { ValueName = "N" };

    public static OptionKey<ulong> Unsigned(string name, string? llamaRecipes, string meaning, Func<FinetuneOptions, ulong> get,
        Func<FinetuneOptions, ulong, FinetuneOptions> with, [CallerArgumentExpression(nameof(get))] string getter = "")
        => new(name, "--" + name, llamaRecipes, meaning, get, with, v => v.ULong(), PropertyOf(getter)) { ValueName = "N" };

    public static OptionKey<double> Number(string name, string? llamaRecipes, string meaning, Func<FinetuneOptions, double> get,
        Func<FinetuneOptions, double, FinetuneOptions> with, [CallerArgumentExpression(nameof(get))] string getter = "")
        => new(name, "--" + name, llamaRecipes, meaning, get, with, v => v.Double(), PropertyOf(getter)) { ValueName = "X" };

    public static OptionKey<bool> Switch(string name, string? llamaRecipes, string meaning, Func<FinetuneOptions, bool> get,
        Func<FinetuneOptions, bool, FinetuneOptions> with, [CallerArgumentExpression(nameof(get))] string getter = "")
        => new(name, "--" + name, llamaRecipes, meaning, get, with, v => v.Bool(), PropertyOf(getter)) { ValueName = "true|false" };

    /// <summary>One of <paramref name="names"/> (case-insensitive in a file; exactly in a flag, which lists them).</summary>
    public static OptionKey<string> Choice(string name, string? llamaRecipes, string meaning, string[] names, Func<FinetuneOptions, string> get,
        Func<FinetuneOptions, string, FinetuneOptions> with, [CallerArgumentExpression(nameof(get))] string getter = "")
        => new(name, "--" + name, llamaRecipes, meaning, get, with, v => names[v.Choice(names)], PropertyOf(getter)) { Choices = names, ValueName = string.Join('|', names) };

    /// <summary>A llama-recipes spelling with no flag of its own, resolved together with <paramref name="combinesWith"/>.</summary>
    public static OptionKey<string?> Alias(string llamaRecipes, string meaning, OptionKey combinesWith)
        => new(llamaRecipes.Replace('_', '-'), null, llamaRecipes, meaning, _ => null, (o, _) => o, null, combinesWith.Property) { Saved = false };

    /// <summary>The property a getter reads: "o => o.LoraR" → "LoraR"; a getter that reads none is a mistake in the registry, found when it loads.</summary>
    private static string PropertyOf(string getter) => PropertyRead().Match(getter) is { Success: true } m
        ? m.Groups[1].Value
        : throw new InvalidOperationException($"an option's getter must read a property of 'o', got '{getter}'");

    [GeneratedRegex(@"(?<![\w.])o\.(\w+)")]
    private static partial Regex PropertyRead();
}
