namespace CudaFinetune.Config;

/// <summary>How a scalar was written, which decides the types it may be read as.</summary>
internal enum ScalarKind
{
    /// <summary>An unquoted YAML scalar: read as a number, boolean, null or string as the key needs.</summary>
    Plain,

    /// <summary>A quoted YAML scalar, a block scalar or a JSON string: only ever a string.</summary>
    String,

    /// <summary>A JSON number (its literal text).</summary>
    Number,

    /// <summary>A JSON <c>true</c>/<c>false</c>.</summary>
    Boolean,

    /// <summary>A JSON <c>null</c>.</summary>
    Null,
}

/// <summary>
/// One value of a configuration file, parsed from JSON or YAML into the same small tree so that
/// both formats are read by one piece of code. <see cref="Line"/> is 1-based, 0 where the parser
/// gives none (JSON).
/// </summary>
internal abstract class ConfigNode(int line)
{
    public int Line { get; } = line;
}

internal sealed class ConfigScalar(string text, ScalarKind kind, int line) : ConfigNode(line)
{
    public string Text { get; } = text;
    public ScalarKind Kind { get; } = kind;

    /// <summary>JSON null, or an unquoted YAML <c>~</c>, <c>null</c> or nothing at all.</summary>
    public bool IsNull => Kind == ScalarKind.Null || (Kind == ScalarKind.Plain && Text is "" or "~" or "null" or "Null" or "NULL");
}

internal sealed class ConfigList(IReadOnlyList<ConfigNode> items, int line) : ConfigNode(line)
{
    public IReadOnlyList<ConfigNode> Items { get; } = items;
}

internal sealed record ConfigEntry(string Key, ConfigNode Value, int Line);

internal sealed class ConfigMap(IReadOnlyList<ConfigEntry> entries, int line) : ConfigNode(line)
{
    public IReadOnlyList<ConfigEntry> Entries { get; } = entries;
}
