using System.Globalization;
using System.Text.Json;
using CudaFinetune.Errors;
using CudaFinetune.IO;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace CudaFinetune.Config;

/// <summary>
/// Reads a configuration file (JSON by <c>.json</c>, YAML by <c>.yaml</c>/<c>.yml</c>) into a
/// <see cref="ConfigMap"/>. Every failure is a <see cref="UserErrorException"/> whose message
/// starts with the file (and the line where the parser knows it). JSON goes through JsonDocument,
/// YAML through YamlDotNet's representation model only (no object-graph deserializer), so the
/// code stays NativeAOT-safe.
/// </summary>
internal static class ConfigFileParser
{
    public static ConfigMap Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string extension = Path.GetExtension(path).ToLowerInvariant();
        bool json = extension == ".json";
        if (!json && extension is not (".yaml" or ".yml"))
        {
            throw new UserErrorException($"{path}: a config file must end in .json, .yaml or .yml (found '{(extension.Length == 0 ? "no extension" : extension)}')");
        }
        if (Directory.Exists(path))
        {
            throw new UserErrorException($"{path}: is a directory; --config needs a .json or .yaml file");
        }
        byte[] bytes;
        try
        {
            bytes = IO.RegularFiles.ReadAll(path, MaxConfigBytes, followLinks: true); // a FIFO or device is refused, not waited on
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new UserErrorException($"{path}: no such config file", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserErrorException($"{path}: cannot read the config file ({e.Message})", e);
        }
        string text = DecodeUtf8(bytes, path);
        return json ? ParseJson(text, path) : ParseYaml(text, path);
    }

    private static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    /// <summary>A config is a few kilobytes; anything this large is not one.</summary>
    private const long MaxConfigBytes = 16 << 20;

    /// <summary>
    /// The file's text, which must be UTF-8 (a BOM is allowed): a Latin-1 or UTF-16 file decoded leniently would turn its
    /// accented paths into U+FFFD and send the run somewhere the user never named.
    /// </summary>
    private static string DecodeUtf8(byte[] bytes, string path)
    {
        int start = bytes.AsSpan().StartsWith(Utf8Bom) ? Utf8Bom.Length : 0;
        try
        {
            return StrictUtf8.GetString(bytes, start, bytes.Length - start);
        }
        catch (System.Text.DecoderFallbackException e)
        {
            int offset = Math.Min(start + Math.Max(0, e.Index), bytes.Length - 1);
            throw new UserErrorException($"{path}: is not UTF-8 text (byte 0x{bytes[offset]:X2} at offset {offset}); save the config file as UTF-8", e);
        }
    }

    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // ---- JSON ----------------------------------------------------------------------------------

    public static ConfigMap ParseJson(string text, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            string where = e.LineNumber is { } line ? $"{source}:{line + 1}" : source;
            throw new UserErrorException($"{where}: not valid JSON ({StripJsonPosition(e.Message)})", e);
        }
        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new UserErrorException($"{source}: the top level must be a JSON object of settings ({{\"key\": value, ...}}), found {JsonFields.KindName(root.ValueKind)}");
            }
            return (ConfigMap)FromJson(root, source);
        }
    }

    private static ConfigNode FromJson(JsonElement element, string source)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var entries = new List<ConfigEntry>();
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (JsonProperty property in element.EnumerateObject())
                {
                    if (!seen.Add(property.Name))
                    {
                        throw new UserErrorException($"{source}: key '{property.Name}' appears twice; keep one");
                    }
                    entries.Add(new ConfigEntry(property.Name, FromJson(property.Value, source), 0));
                }
                return new ConfigMap(entries, 0);
            case JsonValueKind.Array:
                var items = new List<ConfigNode>();
                foreach (JsonElement item in element.EnumerateArray())
                {
                    items.Add(FromJson(item, source));
                }
                return new ConfigList(items, 0);
            case JsonValueKind.String:
                return new ConfigScalar(element.GetString()!, ScalarKind.String, 0);
            case JsonValueKind.Number:
                return new ConfigScalar(element.GetRawText(), ScalarKind.Number, 0);
            case JsonValueKind.True:
                return new ConfigScalar("true", ScalarKind.Boolean, 0);
            case JsonValueKind.False:
                return new ConfigScalar("false", ScalarKind.Boolean, 0);
            default:
                return new ConfigScalar("null", ScalarKind.Null, 0);
        }
    }

    /// <summary>System.Text.Json ends its messages with " LineNumber: 2 | BytePositionInLine: 7."; the line is reported separately.</summary>
    private static string StripJsonPosition(string message)
    {
        int at = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (at >= 0 ? message[..at] : message).TrimEnd();
    }

    // ---- YAML ----------------------------------------------------------------------------------

    private const string StrTag = "tag:yaml.org,2002:str";

    /// <summary>
    /// Bounds on the tree a YAML file may describe. '*' aliases let a kilobyte name a billion values
    /// (or a cycle), and nesting deeper than this is no settings file, only a stack overflow for a
    /// recursive reader.
    /// </summary>
    private const int MaxYamlValues = 100_000;

    private const int MaxYamlDepth = 64;

    public static ConfigMap ParseYaml(string text, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new DepthLimitedParser(new Parser(new StringReader(text)), source));
        }
        catch (YamlException e)
        {
            throw new UserErrorException($"{source}:{e.Start.Line}: not valid YAML ({YamlMessage(e)})", e);
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet 18 throws this (without a position) for some unterminated flow collections.
            throw new UserErrorException($"{source}: not valid YAML (the parser stopped without a position; look for an unclosed '[', '{{' or quote)", e);
        }
        if (stream.Documents.Count == 0)
        {
            throw new UserErrorException($"{source}: holds no settings; write one 'key: value' per line");
        }
        if (stream.Documents.Count > 1)
        {
            throw new UserErrorException($"{source}: holds {stream.Documents.Count} YAML documents (separated by '---'); put all settings in one");
        }
        YamlNode root = stream.Documents[0].RootNode;
        if (root is not YamlMappingNode)
        {
            string found = root switch
            {
                YamlSequenceNode => "a list",
                YamlScalarNode s when s.Style == ScalarStyle.Plain && s.Value is null or "" or "~" or "null" => "nothing",
                YamlScalarNode s => $"the scalar '{s.Value}'",
                _ => "something else",
            };
            throw new UserErrorException($"{source}:{root.Start.Line}: the top level must be a mapping of settings, one 'key: value' per line; found {found}");
        }
        int values = 0;
        return (ConfigMap)FromYaml(root, source, 0, ref values);
    }

    private static string YamlMessage(YamlException e)
    {
        string message = e.Message;
        // YamlDotNet messages sometimes start with "(Line: 3, Col: 1, Idx: 12) - (Line: ...): ".
        int close = message.StartsWith("(Line:", StringComparison.Ordinal) ? message.IndexOf("): ", StringComparison.Ordinal) : -1;
        return (close >= 0 ? message[(close + 3)..] : message).Trim().TrimEnd('.');
    }

    private static ConfigNode FromYaml(YamlNode node, string source, int depth, ref int values)
    {
        int line = ToLine(node.Start);
        if (++values > MaxYamlValues)
        {
            throw new UserErrorException($"{source}:{line}: expands to more than {MaxYamlValues} values (through '*' aliases?); a config file holds settings, not data");
        }
        if (depth > MaxYamlDepth)
        {
            throw new UserErrorException($"{source}:{line}: nests more than {MaxYamlDepth} levels deep (through '*' aliases?)");
        }
        switch (node)
        {
            case YamlMappingNode mapping:
                var entries = new List<ConfigEntry>();
                foreach (KeyValuePair<YamlNode, YamlNode> pair in mapping.Children)
                {
                    if (pair.Key is not YamlScalarNode { Value: { } key })
                    {
                        throw new UserErrorException($"{source}:{ToLine(pair.Key.Start)}: keys must be plain names, not lists or mappings");
                    }
                    entries.Add(new ConfigEntry(key, FromYaml(pair.Value, source, depth + 1, ref values), ToLine(pair.Key.Start)));
                }
                return new ConfigMap(entries, line);
            case YamlSequenceNode sequence:
                var items = new List<ConfigNode>();
                foreach (YamlNode item in sequence.Children)
                {
                    items.Add(FromYaml(item, source, depth + 1, ref values));
                }
                return new ConfigList(items, line);
            case YamlScalarNode scalar:
                bool plain = scalar.Style is ScalarStyle.Plain or ScalarStyle.Any
                    && (scalar.Tag.IsEmpty || scalar.Tag.Value != StrTag);
                return new ConfigScalar(scalar.Value ?? "", plain ? ScalarKind.Plain : ScalarKind.String, line);
            default:
                throw new UserErrorException($"{source}:{line}: unsupported YAML node");
        }
    }

    /// <summary>
    /// Refuses nesting deeper than <see cref="MaxYamlDepth"/> as the events stream in: YamlStream
    /// builds its tree recursively, and a line of 100,000 '[' would overflow the stack, which no
    /// catch survives.
    /// </summary>
    private sealed class DepthLimitedParser(IParser inner, string source) : IParser
    {
        private int _depth;

        public ParsingEvent? Current => inner.Current;

        public bool MoveNext()
        {
            if (!inner.MoveNext())
            {
                return false;
            }
            if (inner.Current is SequenceStart or MappingStart && ++_depth > MaxYamlDepth)
            {
                throw new UserErrorException($"{source}:{ToLine(inner.Current.Start)}: nests more than {MaxYamlDepth} levels deep");
            }
            if (inner.Current is SequenceEnd or MappingEnd)
            {
                _depth--;
            }
            return true;
        }
    }

    private static int ToLine(Mark mark) => mark.Line > int.MaxValue ? int.MaxValue : (int)mark.Line;

    /// <summary>The message prefix that locates something: "file:line" or just "file".</summary>
    public static string Where(string source, int line) => line > 0 ? string.Create(CultureInfo.InvariantCulture, $"{source}:{line}") : source;
}
