using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Training;

namespace CudaFinetune.Data;

/// <summary>
/// What the data options say about reading records: the format (or auto), the field map and the
/// custom prompt template, parsed and checked once.
/// </summary>
internal sealed partial class DatasetFormatSpec
{
    /// <summary>Field names the formats use, which --field-map can point at other fields.</summary>
    public static readonly string[] CanonicalFields = ["input_ids", "labels", "messages", "instruction", "input", "output", "dialogue", "summary", "target", "text", "prompt", "response"];

    private readonly Dictionary<string, string> _map;

    private DatasetFormatSpec(string format, Dictionary<string, string> map, IReadOnlyList<TemplatePart>? template, string chatTemplate)
    {
        Format = format;
        _map = map;
        Template = template;
        ChatTemplate = chatTemplate;
    }

    /// <summary>How chat records are rendered (<see cref="ChatTemplates"/>).</summary>
    public string ChatTemplate { get; }

    /// <summary>"auto" or one of <see cref="DatasetLoader.Formats"/>.</summary>
    public string Format { get; }

    /// <summary>The parsed --prompt-template, or null.</summary>
    public IReadOnlyList<TemplatePart>? Template { get; }

    public static DatasetFormatSpec From(FinetuneOptions options)
    {
        string format = options.DatasetFormat;
        if (format != DatasetLoader.AutoFormat && !DatasetLoader.Formats.Contains(format))
        {
            throw new UserErrorException($"--dataset-format must be {DatasetLoader.AutoFormat}, {string.Join(", ", DatasetLoader.Formats)}; got '{format}'");
        }
        IReadOnlyList<TemplatePart>? template = null;
        if (options.PromptTemplate is { } text)
        {
            if (format is not (DatasetLoader.AutoFormat or DatasetLoader.CustomFormat))
            {
                throw new UserErrorException($"--prompt-template is used by the custom format only, but --dataset-format is {format}; drop the template or use --dataset-format custom");
            }
            template = ParseTemplate(text);
        }
        if (!ChatTemplates.Names.Contains(options.ChatTemplate))
        {
            throw new UserErrorException($"--chat-template must be {string.Join(", ", ChatTemplates.Names)}, got '{options.ChatTemplate}'");
        }
        return new DatasetFormatSpec(format, ParseFieldMap(options.FieldMap), template, options.ChatTemplate);
    }

    /// <summary>The record field that holds <paramref name="canonical"/>: its --field-map source, else the same name.</summary>
    public string Source(string canonical) => _map.TryGetValue(canonical, out string? source) ? source : canonical;

    /// <summary>The field for <paramref name="canonical"/>, when present and not null.</summary>
    public bool TryGet(JsonElement record, string canonical, out JsonElement value) =>
        record.TryGetProperty(Source(canonical), out value) && value.ValueKind != JsonValueKind.Null;

    public bool Has(JsonElement record, string canonical) => TryGet(record, canonical, out _);

    /// <summary>"name" or "name (--field-map name=source)" for messages.</summary>
    public string Describe(string canonical) =>
        _map.TryGetValue(canonical, out string? source) ? $"'{source}' (--field-map {canonical}={source})" : $"'{canonical}'";

    /// <summary>The format a record has (custom whenever a template is given, else the first of <see cref="DatasetLoader.Formats"/> whose fields it has); null for none.</summary>
    public string? Detect(JsonElement record)
    {
        if (Template is not null)
        {
            return DatasetLoader.CustomFormat;
        }
        foreach (string format in DatasetLoader.Formats)
        {
            if (Matches(record, format))
            {
                return format;
            }
        }
        return null;
    }

    public bool Matches(JsonElement record, string format) => format switch
    {
        DatasetLoader.PretokenizedFormat => Has(record, "input_ids"),
        DatasetLoader.AlpacaFormat => Has(record, "instruction") && Has(record, "output"),
        DatasetLoader.SamsumFormat => Has(record, "dialogue") && Has(record, "summary"),
        DatasetLoader.ChatFormat => Has(record, "messages"),
        DatasetLoader.GrammarFormat => Has(record, "input") && Has(record, "target"),
        DatasetLoader.CustomFormat => Has(record, "response") && (Template is not null || Has(record, "prompt")),
        DatasetLoader.TextFormat => Has(record, "text"),
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "unknown dataset format"),
    };

    /// <summary>The fields a format needs, for messages.</summary>
    public string Required(string format) => format switch
    {
        DatasetLoader.PretokenizedFormat => $"{Describe("input_ids")}, optional {Describe("labels")}",
        DatasetLoader.AlpacaFormat => $"{Describe("instruction")}, {Describe("output")}, optional {Describe("input")}",
        DatasetLoader.SamsumFormat => $"{Describe("dialogue")}, {Describe("summary")}",
        DatasetLoader.ChatFormat => $"{Describe("messages")} (role and content objects)",
        DatasetLoader.GrammarFormat => $"{Describe("input")}, {Describe("target")}",
        DatasetLoader.CustomFormat => Template is null
            ? $"{Describe("prompt")}, {Describe("response")}"
            : $"{Describe("response")} and the --prompt-template fields {string.Join(", ", Template.Where(p => p.Field is not null).Select(p => $"'{p.Field}'").Distinct())}",
        DatasetLoader.TextFormat => Describe("text"),
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "unknown dataset format"),
    };

    /// <summary>Renders the template with the record's fields; <paramref name="where"/> prefixes messages.</summary>
    public string RenderTemplate(JsonElement record, string where)
    {
        var text = new StringBuilder();
        foreach (TemplatePart part in Template!)
        {
            if (part.Field is null)
            {
                text.Append(part.Literal);
                continue;
            }
            if (!record.TryGetProperty(part.Field, out JsonElement value) || value.ValueKind == JsonValueKind.Null)
            {
                throw new UserErrorException($"{where}: --prompt-template uses {{{part.Field}}}, but the record has no field '{part.Field}' (its fields: {FieldList(record)})");
            }
            text.Append(value.ValueKind switch
            {
                JsonValueKind.String => value.GetString(),
                JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
                _ => throw new UserErrorException($"{where}: field '{part.Field}' used by --prompt-template must be a string or a number, not {value.ValueKind.ToString().ToLowerInvariant()}"),
            });
        }
        return text.ToString();
    }

    public static string FieldList(JsonElement record)
    {
        var names = record.EnumerateObject().Select(p => p.Name).ToList();
        return names.Count == 0 ? "none" : string.Join(", ", names);
    }

    private static Dictionary<string, string> ParseFieldMap(string? fieldMap)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(fieldMap))
        {
            return map;
        }
        foreach (string pair in fieldMap.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int equals = pair.IndexOf('=', StringComparison.Ordinal);
            string canonical = equals < 0 ? "" : pair[..equals].Trim();
            string source = equals < 0 ? "" : pair[(equals + 1)..].Trim();
            if (canonical.Length == 0 || source.Length == 0)
            {
                throw new UserErrorException($"--field-map entry '{pair}' is not of the form format_field=your_field (e.g. --field-map instruction=question,output=answer)");
            }
            if (!CanonicalFields.Contains(canonical))
            {
                throw new UserErrorException($"--field-map entry '{pair}': '{canonical}' is not a field any format uses; map one of: {string.Join(", ", CanonicalFields)}");
            }
            if (!map.TryAdd(canonical, source))
            {
                throw new UserErrorException($"--field-map maps '{canonical}' twice");
            }
        }
        return map;
    }

    /// <summary>The template's literal pieces (escapes resolved, see <see cref="Unescape"/>) and its {field} placeholders.</summary>
    internal static List<TemplatePart> ParseTemplate(string template)
    {
        var parts = new List<TemplatePart>();
        int at = 0;
        foreach (Match match in PlaceholderRegex().Matches(template))
        {
            if (match.Index > at)
            {
                parts.Add(new TemplatePart(Unescape(template[at..match.Index]), null));
            }
            parts.Add(new TemplatePart("", match.Groups[1].Value));
            at = match.Index + match.Length;
        }
        if (at < template.Length)
        {
            parts.Add(new TemplatePart(Unescape(template[at..]), null));
        }
        return parts;
    }

    /// <summary>
    /// Resolves <c>\n</c> (newline), <c>\t</c> (tab) and <c>\\</c> (one backslash), left to right; a backslash before
    /// anything else stays as it is. A shell passes <c>'Q: {q}\nA: '</c> as backslash and n, and YAML's plain and
    /// single-quoted strings keep them too, so without this a command-line template could not hold a newline.
    /// A template that already holds real newlines (JSON's "\n", YAML's double quotes or block scalars) has no
    /// backslashes to resolve and is unchanged.
    /// </summary>
    internal static string Unescape(string text)
    {
        if (!text.Contains('\\', StringComparison.Ordinal))
        {
            return text;
        }
        var result = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '\\' && i + 1 < text.Length && text[i + 1] is 'n' or 't' or '\\')
            {
                result.Append(text[++i] switch { 'n' => '\n', 't' => '\t', _ => '\\' });
            }
            else
            {
                result.Append(text[i]);
            }
        }
        return result.ToString();
    }

    [GeneratedRegex(@"\{([A-Za-z_][A-Za-z0-9_]*)\}", RegexOptions.CultureInvariant)]
    private static partial Regex PlaceholderRegex();
}

/// <summary>A literal piece of a prompt template, or (Field not null) a {field} placeholder.</summary>
internal sealed record TemplatePart(string Literal, string? Field);
