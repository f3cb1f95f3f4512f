using CudaFinetune.Errors;

namespace CudaFinetune.Config;

/// <summary>
/// One key's value with what is needed to complain about it: the file, the key as written and its
/// line. Each reader checks the type and throws a <see cref="UserErrorException"/> that names the
/// key, the type it needs and the value found. Numbers are read by <see cref="ValueText"/>'s rules, the ones JSON
/// files' readers (<see cref="IO.JsonFields"/>) use.
/// </summary>
internal readonly struct ConfigValue(string source, string key, ConfigNode node, int line)
{
    public string Source { get; } = source;

    /// <summary>The key as the file spells it (nested keys as "lora_config.r").</summary>
    public string Key { get; } = key;

    public ConfigNode Node { get; } = node;
    public int Line { get; } = line > 0 ? line : node.Line;

    public string Where => ConfigFileParser.Where(Source, Line);

    public bool IsNull => Node is ConfigScalar { IsNull: true };

    /// <summary>The value as the file has it, for messages ("'enable_fsdp: true' is not supported").</summary>
    public string Text => Node switch
    {
        ConfigScalar { IsNull: true } => "null",
        ConfigScalar s => s.Text,
        ConfigList l => "[" + string.Join(", ", l.Items.Select(i => i is ConfigScalar s ? s.Text : "…")) + "]",
        _ => "{…}",
    };

    public UserErrorException Error(string message) => new($"{Where}: {message}");

    /// <summary>"'key' must be {expected}, got {found}".</summary>
    public UserErrorException TypeError(string expected, string? hint = null)
        => Error($"'{Key}' must be {expected}, got {Found()}{hint}");

    private string Found() => Node switch
    {
        ConfigScalar { IsNull: true } => "no value (null)",
        ConfigScalar { Kind: ScalarKind.String } s => $"the string \"{s.Text}\"",
        ConfigScalar s => s.Text,
        ConfigList => "a list",
        _ => "a mapping",
    };

    private string? NumberText => Node is ConfigScalar { IsNull: false, Kind: ScalarKind.Plain or ScalarKind.Number } s ? s.Text : null;

    private string? QuotedHint(Func<string, bool> wouldParse)
        => Node is ConfigScalar { Kind: ScalarKind.String } s && wouldParse(s.Text) ? " (remove the quotes)" : null;

    public long Integer(string expected, long min, long max)
    {
        if (NumberText is { } text && ValueText.TryParseInteger(text, out long value))
        {
            if (value < min || value > max)
            {
                throw TypeError(expected);
            }
            return value;
        }
        throw TypeError(expected, QuotedHint(t => ValueText.TryParseInteger(t, out _)));
    }

    public int Int() => (int)Integer("an integer", int.MinValue, int.MaxValue);

    public int NonNegativeInt() => (int)Integer("an integer, zero or more", 0, int.MaxValue);

    public ulong ULong()
    {
        if (NumberText is { } text && ValueText.TryParseUnsigned(text, out ulong value))
        {
            return value;
        }
        throw TypeError("a non-negative integer", QuotedHint(t => ValueText.TryParseUnsigned(t, out _)));
    }

    /// <summary>The value as a finite number; null where it is not one.</summary>
    public double? TryDouble() => NumberText is { } text && ValueText.TryParseNumber(text, out double value) ? value : null;

    public double Double()
    {
        if (TryDouble() is { } value)
        {
            return value;
        }
        throw TypeError("a number", QuotedHint(t => ValueText.TryParseNumber(t, out _)));
    }

    /// <summary>true/false (YAML also yes/no/on/off, any case); null where the value is not a boolean.</summary>
    public bool? TryBool() => Node switch
    {
        ConfigScalar { Kind: ScalarKind.Boolean } s => s.Text == "true",
        ConfigScalar { Kind: ScalarKind.Plain } s => s.Text.ToLowerInvariant() switch
        {
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            _ => null,
        },
        _ => null,
    };

    public bool Bool() => TryBool() ?? throw TypeError("true or false",
        Node is ConfigScalar { Kind: ScalarKind.String, Text: var t } && t.ToLowerInvariant() is "true" or "false" ? " (remove the quotes)" : null);

    /// <summary>A string, or null for an empty/null value. A YAML scalar is taken as written; JSON needs a string.</summary>
    public string? NullableString() => Node switch
    {
        ConfigScalar { IsNull: true } => null,
        ConfigScalar { Kind: ScalarKind.Plain or ScalarKind.String } s => s.Text,
        _ => throw TypeError("a string"),
    };

    public string String() => NullableString() ?? throw TypeError("a string");

    /// <summary>One of <paramref name="names"/>, case-insensitive; returns the matching index.</summary>
    public int Choice(params string[] names)
    {
        string? text = Node is ConfigScalar { IsNull: false, Kind: ScalarKind.Plain or ScalarKind.String } s ? s.Text.Trim() : null;
        int index = text is null ? -1 : Array.FindIndex(names, n => string.Equals(n, text, StringComparison.OrdinalIgnoreCase));
        return index >= 0 ? index : throw TypeError("one of " + string.Join(", ", names));
    }

    /// <summary>A list of names or one comma-separated string; returned comma-joined without spaces.</summary>
    public string NameList()
    {
        IEnumerable<string> names;
        if (Node is ConfigList list)
        {
            ConfigValue self = this;
            names = list.Items.Select(item => item is ConfigScalar { IsNull: false, Kind: ScalarKind.Plain or ScalarKind.String } s
                ? s.Text
                : throw self.TypeError("a list of names or a comma-separated string"));
        }
        else
        {
            names = String().Split(',');
        }
        string[] cleaned = names.Select(n => n.Trim()).ToArray();
        if (cleaned.Length == 0 || cleaned.Any(n => n.Length == 0))
        {
            throw TypeError("a non-empty list of names (no empty entries)");
        }
        return string.Join(",", cleaned);
    }
}
