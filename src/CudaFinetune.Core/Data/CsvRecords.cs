using System.Text;
using System.Text.Json;
using CudaFinetune.Errors;

namespace CudaFinetune.Data;

/// <summary>
/// A CSV dataset (RFC 4180: a header row of field names, commas, fields in double quotes may hold commas, newlines and
/// doubled quotes) as records: each row becomes a JSON object of string fields named by the header — how llama-recipes'
/// grammar dataset (input and target columns) arrives.
/// </summary>
internal static class CsvRecords
{
    public static IEnumerable<DatasetRecord> Read(ReadOnlyMemory<byte> content, string source)
    {
        string text = Encoding.UTF8.GetString(content.Span);
        var rows = Parse(text, source);
        if (rows.Count == 0)
        {
            yield break;
        }
        var header = rows[0].Fields;
        if (header.Count == 0 || header.Any(string.IsNullOrWhiteSpace) || header.Distinct(StringComparer.Ordinal).Count() != header.Count)
        {
            throw new UserErrorException($"{source}, line 1: the header row must name every column once (found: {string.Join(", ", header.Select(h => $"'{h}'"))})");
        }
        foreach (var (fields, line) in rows.Skip(1))
        {
            if (fields is [""])
            {
                continue; // a blank line
            }
            if (fields.Count != header.Count)
            {
                throw new UserErrorException($"{source}, line {line}: {fields.Count} fields, but the header names {header.Count}");
            }
            var buffer = new System.Buffers.ArrayBufferWriter<byte>();
            using (var w = new Utf8JsonWriter(buffer))
            {
                w.WriteStartObject();
                for (int i = 0; i < header.Count; i++)
                {
                    w.WriteString(header[i], fields[i]);
                }
                w.WriteEndObject();
            }
            using var document = JsonDocument.Parse(buffer.WrittenMemory);
            yield return new DatasetRecord(document.RootElement, line);
        }
    }

    private static List<(List<string> Fields, int Line)> Parse(string text, string source)
    {
        var rows = new List<(List<string>, int)>();
        var fields = new List<string>();
        var field = new StringBuilder();
        int line = 1, rowLine = 1;
        bool quoted = false, any = false;
        for (int i = text.Length > 0 && text[0] == '\uFEFF' ? 1 : 0; i < text.Length; i++)
        {
            char c = text[i];
            any = true;
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    line += c == '\n' ? 1 : 0;
                    field.Append(c);
                }
                continue;
            }
            switch (c)
            {
                case '"' when field.Length == 0:
                    quoted = true;
                    break;
                case ',':
                    fields.Add(field.ToString());
                    field.Clear();
                    break;
                case '\r':
                    break;
                case '\n':
                    fields.Add(field.ToString());
                    field.Clear();
                    rows.Add((fields, rowLine));
                    fields = [];
                    rowLine = ++line;
                    any = false;
                    break;
                default:
                    field.Append(c);
                    break;
            }
        }
        if (quoted)
        {
            throw new UserErrorException($"{source}, line {rowLine}: a quoted field is never closed");
        }
        if (any || fields.Count > 0)
        {
            fields.Add(field.ToString());
            rows.Add((fields, rowLine));
        }
        return rows;
    }
}
