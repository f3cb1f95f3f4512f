using System.Text.Encodings.Web;
using System.Text.Json;
using CudaFinetune.Errors;

namespace CudaFinetune.IO;

/// <summary>
/// Checked reading of a JSON file that came from outside the process (a user's file, or one an earlier run wrote): one
/// value of the file, its path from the top ("rope_scaling.factor", "files[3].path", "model.vocab[\"a\"]") and the file's
/// way of making an error. Every problem is one message in one wording —
/// <c>FILE: 'path' must be EXPECTED, found FOUND</c>, <c>FILE: 'path' is missing</c>, or <c>FILE: 'path' PROBLEM</c> for
/// a reader's own checks (<see cref="Error(string)"/>) — thrown as a <see cref="UserErrorException"/> (or the
/// subclass the file's factory makes: the checkpoint manifest's is a CheckpointCorruptException).
/// <para>
/// A required member (<see cref="String(string)"/>, <see cref="Int(string, int, int)"/>, …) must be present and of
/// its kind: absent is "is missing", null is "must be …, found null". An optional one (<c>Optional…</c>) reads as
/// null when absent or null, and is checked otherwise. Numbers follow <see cref="ValueText"/>'s rules, shared with
/// config files: integers have no fraction or exponent, numbers are finite. No reflection: NativeAOT-safe.
/// </para>
/// </summary>
internal readonly struct JsonFields
{
    /// <summary>Longest JSON text quoted in a message; longer values are named by their kind.</summary>
    private const int QuoteLimit = 40;

    private readonly JsonElement _value;
    private readonly Func<string, UserErrorException> _error;

    private JsonFields(JsonElement value, string path, Func<string, UserErrorException> error)
    {
        _value = value;
        Path = path;
        _error = error;
    }

    /// <summary>Where this value is in the file ("" for the top level).</summary>
    public string Path { get; }

    /// <summary>The value itself; <see cref="JsonValueKind.Undefined"/> for an absent member.</summary>
    public JsonElement Value => _value;

    public JsonValueKind Kind => _value.ValueKind;

    /// <summary>Present and not null.</summary>
    public bool IsGiven => Kind is not (JsonValueKind.Undefined or JsonValueKind.Null);

    /// <summary>The value's JSON text as the file has it.</summary>
    public string Raw => _value.GetRawText();

    // ---- the file -------------------------------------------------------------------------------------------------------

    /// <summary>Errors as <see cref="UserErrorException"/>s that start with <paramref name="file"/>.</summary>
    public static Func<string, UserErrorException> FileErrors(string file) => problem => new UserErrorException($"{file}: {problem}");

    /// <summary>Parses a whole file with <see cref="StrictJson"/>; malformed JSON or UTF-8 is "FILE: not valid JSON (…)".</summary>
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8, string file, JsonDocumentOptions options = default)
        => Parse(utf8, FileErrors(file), options);

    /// <inheritdoc cref="Parse(ReadOnlyMemory{byte}, string, JsonDocumentOptions)"/>
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8, Func<string, UserErrorException> error, JsonDocumentOptions options = default)
    {
        ArgumentNullException.ThrowIfNull(error);
        try
        {
            return StrictJson.Parse(utf8, options);
        }
        catch (JsonException e)
        {
            throw error($"not valid JSON ({e.Message})");
        }
    }

    /// <summary>The document's top level, which must be a JSON object.</summary>
    public static JsonFields Root(JsonDocument document, string file) => Root(document, FileErrors(file));

    /// <inheritdoc cref="Root(JsonDocument, string)"/>
    public static JsonFields Root(JsonDocument document, Func<string, UserErrorException> error)
    {
        ArgumentNullException.ThrowIfNull(document);
        ArgumentNullException.ThrowIfNull(error);
        var root = new JsonFields(document.RootElement, "", error);
        return root.Kind == JsonValueKind.Object ? root : throw root.Wrong("a JSON object");
    }

    /// <summary>Any value of a file, read with this wording (e.g. one an enumeration found); <paramref name="path"/> names it.</summary>
    public static JsonFields At(JsonElement value, string path, Func<string, UserErrorException> error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return new JsonFields(value, path, error);
    }

    // ---- errors ---------------------------------------------------------------------------------------------------------

    /// <summary>"'path' PROBLEM" (the top level: "the top level PROBLEM"), through the file's factory.</summary>
    public UserErrorException Error(string problem) => _error(Path.Length == 0 ? $"the top level {problem}" : $"'{Path}' {problem}");

    /// <summary><see cref="Error(string)"/> for member <paramref name="name"/>.</summary>
    public UserErrorException Error(string name, string problem) => Member(name).Error(problem);

    /// <summary>"'path' must be EXPECTED, found FOUND", or "'path' is missing" when the value is absent.</summary>
    public UserErrorException Wrong(string expected)
        => Kind == JsonValueKind.Undefined ? Error("is missing") : Error($"must be {expected}, found {Describe(_value)}");

    /// <summary>A value for a message: its JSON text when short and on one line, else its kind ("an object").</summary>
    public static string Describe(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Undefined)
        {
            return "nothing";
        }
        string raw = value.GetRawText();
        if (raw.Length <= QuoteLimit && !raw.Contains('\n', StringComparison.Ordinal) && !raw.Contains('\r', StringComparison.Ordinal))
        {
            return raw;
        }
        return value.ValueKind switch
        {
            JsonValueKind.String => "a long string",
            JsonValueKind.Number => "a long number",
            _ => KindName(value.ValueKind),
        };
    }

    /// <summary>"an object", "an array", "a string", "a number", "a boolean", "null" (found values, by kind).</summary>
    public static string KindName(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    /// <summary>A text (an object's key, a token) for a message: JSON-quoted, so spaces and control characters show; cut when long.</summary>
    public static string Quote(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string shown = text.Length > QuoteLimit ? text[..QuoteLimit] + "…" : text;
        return $"\"{JsonEncodedText.Encode(shown, JavaScriptEncoder.UnsafeRelaxedJsonEscaping)}\"";
    }

    // ---- this value -----------------------------------------------------------------------------------------------------

    /// <summary>Member <paramref name="name"/> of this object (absent: <see cref="JsonValueKind.Undefined"/>), at "path.name".</summary>
    public JsonFields Member(string name)
    {
        JsonElement value = Kind == JsonValueKind.Object && _value.TryGetProperty(name, out var v) ? v : default;
        return new JsonFields(value, Path.Length == 0 ? name : $"{Path}.{name}", _error);
    }

    /// <summary>Whether member <paramref name="name"/> is present and not null.</summary>
    public bool Has(string name) => Member(name).IsGiven;

    public JsonFields AsObject() => Kind == JsonValueKind.Object ? this : throw Wrong("an object");

    /// <summary>The items of this array, each at "path[i]".</summary>
    public List<JsonFields> AsArray()
    {
        if (Kind != JsonValueKind.Array)
        {
            throw Wrong("an array");
        }
        var items = new List<JsonFields>(_value.GetArrayLength());
        foreach (JsonElement item in _value.EnumerateArray())
        {
            items.Add(new JsonFields(item, $"{Path}[{items.Count}]", _error));
        }
        return items;
    }

    /// <summary>The members of this object read as a map whose keys are data (a vocabulary, a tensor index), each at 'path["key"]'.</summary>
    public List<(string Name, JsonFields Value)> Entries()
    {
        var entries = new List<(string, JsonFields)>();
        foreach (JsonProperty property in AsObject()._value.EnumerateObject())
        {
            entries.Add((property.Name, new JsonFields(property.Value, $"{Path}[{Quote(property.Name)}]", _error)));
        }
        return entries;
    }

    public string AsString() => Kind == JsonValueKind.String ? _value.GetString()! : throw Wrong("a string");

    /// <summary>A string that <paramref name="accept"/> takes; else "must be <paramref name="expected"/>, found …".</summary>
    public string AsString(string expected, Func<string, bool> accept)
    {
        ArgumentNullException.ThrowIfNull(accept);
        return Kind == JsonValueKind.String && accept(_value.GetString()!) ? _value.GetString()! : throw Wrong(expected);
    }

    /// <summary>An array of strings.</summary>
    public List<string> AsStringList()
    {
        if (Kind != JsonValueKind.Array || _value.EnumerateArray().Any(item => item.ValueKind != JsonValueKind.String))
        {
            throw Wrong("an array of strings");
        }
        return [.. _value.EnumerateArray().Select(item => item.GetString()!)];
    }

    public bool AsBool() => Kind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Wrong("true or false"),
    };

    /// <summary>An integer in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public long AsLong(long min = long.MinValue, long max = long.MaxValue)
    {
        bool digits = Kind == JsonValueKind.Number && Raw.AsSpan().TrimStart('-').IndexOfAnyExceptInRange('0', '9') < 0;
        if (digits && ValueText.TryParseInteger(Raw, out long value) && value >= min && value <= max)
        {
            return value;
        }
        // A type's whole range goes unsaid unless an integer fell outside it ("an integer" would not say why 3000000000 is wrong).
        bool whole = (min, max) is (long.MinValue, long.MaxValue) or (int.MinValue, int.MaxValue);
        throw Wrong(whole && !digits ? "an integer" : ValueText.Integer(min, max));
    }

    /// <summary>An integer in [<paramref name="min"/>, <paramref name="max"/>] (32 bits).</summary>
    public int AsInt(int min = int.MinValue, int max = int.MaxValue) => (int)AsLong(min, max);

    /// <summary>A non-negative integer that may need all 64 bits (a seed).</summary>
    public ulong AsULong()
        => Kind == JsonValueKind.Number && ValueText.TryParseUnsigned(Raw, out ulong value) ? value : throw Wrong("an integer from 0 to 18446744073709551615");

    /// <summary>A finite number.</summary>
    public double AsNumber()
        => Kind == JsonValueKind.Number && ValueText.TryParseNumber(Raw, out double value) ? value : throw Wrong(Kind == JsonValueKind.Number ? "a finite number" : "a number");

    /// <summary>One of <paramref name="values"/>, as <paramref name="spell"/> writes them.</summary>
    public T AsChoice<T>(IReadOnlyList<T> values, Func<T, string> spell)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(spell);
        if (Kind == JsonValueKind.String)
        {
            string text = _value.GetString()!;
            foreach (T value in values)
            {
                if (spell(value) == text)
                {
                    return value;
                }
            }
        }
        throw Wrong("one of " + string.Join(", ", values.Select(spell)));
    }

    /// <summary>This value, or null when it is absent or null (for the <c>Optional…</c> readers).</summary>
    public JsonFields? Given => IsGiven ? this : null;

    // ---- members by name ------------------------------------------------------------------------------------------------

    public JsonFields Object(string name) => Member(name).AsObject();

    public JsonFields? OptionalObject(string name) => Member(name).Given?.AsObject();

    public List<JsonFields> Array(string name) => Member(name).AsArray();

    public List<JsonFields>? OptionalArray(string name) => Member(name).Given?.AsArray();

    public string String(string name) => Member(name).AsString();

    public string? OptionalString(string name) => Member(name).Given?.AsString();

    /// <inheritdoc cref="AsString(string, Func{string, bool})"/>
    public string String(string name, string expected, Func<string, bool> accept) => Member(name).AsString(expected, accept);

    public List<string>? OptionalStringList(string name) => Member(name).Given?.AsStringList();

    public bool Bool(string name) => Member(name).AsBool();

    public bool? OptionalBool(string name) => Member(name).Given?.AsBool();

    public int Int(string name, int min = int.MinValue, int max = int.MaxValue) => Member(name).AsInt(min, max);

    public int? OptionalInt(string name, int min = int.MinValue, int max = int.MaxValue) => Member(name).Given?.AsInt(min, max);

    public long Long(string name, long min = long.MinValue, long max = long.MaxValue) => Member(name).AsLong(min, max);

    public long? OptionalLong(string name, long min = long.MinValue, long max = long.MaxValue) => Member(name).Given?.AsLong(min, max);

    public ulong ULong(string name) => Member(name).AsULong();

    public double Number(string name) => Member(name).AsNumber();

    public double? OptionalNumber(string name) => Member(name).Given?.AsNumber();

    /// <summary>A member that must be present: a finite number, or null.</summary>
    public double? NumberOrNull(string name)
    {
        JsonFields member = Member(name);
        return member.Kind == JsonValueKind.Null ? null : member.AsNumber();
    }

    public T Choice<T>(string name, IReadOnlyList<T> values, Func<T, string> spell) => Member(name).AsChoice(values, spell);
}
