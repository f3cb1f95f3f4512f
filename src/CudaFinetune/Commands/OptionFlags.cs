using System.CommandLine;
using CudaFinetune.Config;
using CudaFinetune.Training;

namespace CudaFinetune.Cli.Commands;

/// <summary>
/// Command-line flags made from the option registry (<see cref="RunConfigKeys"/>): one System.CommandLine option per key,
/// typed by the key's value (a whole number, a number, true/false or text; text limited to the key's choices where it has
/// some, so a typo fails while parsing with the choices), its help the key's meaning and default. <see cref="Apply"/> sets
/// each flag given on the command line over a starting point. <c>finetune</c> takes every key; <c>eval</c>,
/// <c>generate</c> and <c>bench</c> take the few they share with it, so a flag means the same in every verb.
/// </summary>
internal sealed class OptionFlags
{
    private readonly List<(OptionKey Key, Option Option, Func<ParseResult, FinetuneOptions, FinetuneOptions> Apply)> flags = [];

    /// <summary>Flags for <paramref name="keys"/> (the keys without a flag — llama-recipes aliases — are skipped).</summary>
    public OptionFlags(IEnumerable<OptionKey> keys)
    {
        foreach (OptionKey key in keys.Where(k => k.Flag is not null))
        {
            var (option, apply) = key switch
            {
                OptionKey<int> k => Typed(k),
                OptionKey<ulong> k => Typed(k),
                OptionKey<double> k => Typed(k),
                OptionKey<bool> k => Typed(k),
                OptionKey<string> k => Typed(k),
                _ => throw new InvalidOperationException($"option {key.Name}: no flag type for {key.GetType()}"),
            };
            flags.Add((key, option, apply));
        }
    }

    public IEnumerable<Option> All => flags.Select(f => f.Option);

    /// <summary>The flag made for <paramref name="key"/>.</summary>
    public Option<T> Flag<T>(OptionKey<T> key) => (Option<T>)flags.Single(f => f.Key == key).Option;

    /// <summary>The flag named <paramref name="flag"/> (e.g. <c>--lora-r</c>), as its value type.</summary>
    public Option<T> Named<T>(string flag) => (Option<T>)flags.Single(f => f.Key.Flag == flag).Option;

    /// <summary><paramref name="start"/> with every flag that was given on the command line applied, in registry order.</summary>
    public FinetuneOptions Apply(ParseResult parse, FinetuneOptions start)
    {
        ArgumentNullException.ThrowIfNull(parse);
        return flags.Aggregate(start, (options, flag) => flag.Apply(parse, options));
    }

    /// <summary>Whether <paramref name="option"/> was on the command line (not a default).</summary>
    public static bool Given(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    /// <summary>--help's text for a key: its meaning as a sentence without Markdown (a value it starts with keeps its case), then its default.</summary>
    public static string Help(OptionKey key)
    {
        string text = key.Meaning.Replace("`", "", StringComparison.Ordinal);
        text = key.Meaning[0] == '`' ? text : char.ToUpperInvariant(text[0]) + text[1..];
        return key.DefaultText is { } value ? $"{text} [default: {value}]" : text;
    }

    private static (Option, Func<ParseResult, FinetuneOptions, FinetuneOptions>) Typed<T>(OptionKey<T> key)
    {
        var option = new Option<T>(key.Flag!) { Description = Help(key) };
        if (key.Choices is { } choices)
        {
            option.AcceptOnlyFromAmong([.. choices]);
        }
        else if (key.ValueName is { } name && typeof(T) != typeof(bool))
        {
            option.HelpName = name;
        }
        return (option, (parse, options) => Given(parse, option) ? key.With(options, parse.GetValue(option)!) : options);
    }
}
