using System.Text.Json;
using CudaFinetune.Errors;
using CudaFinetune.IO;

namespace CudaFinetune.Data;

/// <summary>One JSON object of a dataset file and the line it starts on (1-based).</summary>
internal readonly record struct DatasetRecord(JsonElement Value, int Line);

/// <summary>
/// Reads a dataset file's records: <c>.jsonl</c> is JSON Lines (one object per line, blank lines
/// skipped); <c>.json</c> is a JSON array of objects, or JSON Lines when the file does not start with
/// '[' (as Hugging Face's json loader accepts both; a .json file holding one object, even spread over
/// several lines, is one record); <c>.csv</c> has a header row naming the fields (<see cref="CsvRecords"/>). Every
/// problem names the file and the line.
/// </summary>
internal static class DatasetFile
{
    private static readonly JsonDocumentOptions DocumentOptions = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    /// <summary>The file's bytes; <see cref="UserErrorException"/> saying what to do when it is missing or unreadable.</summary>
    public static byte[] Read(string path, string flag, string missingHint)
    {
        if (Directory.Exists(path))
        {
            throw new UserErrorException($"{flag} '{path}' is a directory; pass a .json or .jsonl file");
        }
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new UserErrorException($"{flag} '{path}': no such file; {missingHint}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserErrorException($"{flag} '{path}': cannot read ({e.Message})", e);
        }
    }

    /// <summary>The records of <paramref name="content"/>; <paramref name="source"/> (a file name ending in .json or .jsonl) decides the layout and names it in messages.</summary>
    public static IEnumerable<DatasetRecord> Records(ReadOnlyMemory<byte> content, string source)
    {
        CheckUtf8(content.Span, source);
        string extension = Path.GetExtension(source);
        bool jsonLines;
        if (extension.Equals(".jsonl", StringComparison.OrdinalIgnoreCase))
        {
            jsonLines = true;
        }
        else if (extension.Equals(".json", StringComparison.OrdinalIgnoreCase))
        {
            jsonLines = FirstSignificantByte(content.Span) != (byte)'[';
        }
        else if (extension.Equals(".csv", StringComparison.OrdinalIgnoreCase))
        {
            return CsvRecords.Read(content, source);
        }
        else
        {
            throw new UserErrorException($"dataset '{source}' is neither .json, .jsonl nor .csv; give a .jsonl file (one JSON object per line), a .json file (an array of objects) or a .csv file with a header row");
        }
        ReadOnlyMemory<byte> body = SkipBom(content);
        if (!jsonLines)
        {
            return Array(body, source);
        }
        // A .json file holding one (possibly pretty-printed) object is a single record.
        return extension.Equals(".json", StringComparison.OrdinalIgnoreCase) && TryParseSingleObject(body) is { } single
            ? Single(single)
            : Lines(body, source);
    }

    /// <summary>The file must be UTF-8 text (JSON and CSV are): a damaged or foreign-encoded file is refused at its first bad byte.</summary>
    private static void CheckUtf8(ReadOnlySpan<byte> content, string source)
    {
        if (System.Text.Unicode.Utf8.IsValid(content))
        {
            return;
        }
        int valid = 0;
        while (System.Text.Rune.DecodeFromUtf8(content[valid..], out _, out int consumed) == System.Buffers.OperationStatus.Done)
        {
            valid += consumed;
        }
        int line = 1 + content[..valid].Count((byte)'\n');
        throw new UserErrorException($"{source}, line {line}: not valid UTF-8 text (byte {valid} of the file); save the dataset as UTF-8");
    }

    private static JsonDocument? TryParseSingleObject(ReadOnlyMemory<byte> content)
    {
        try
        {
            JsonDocument document = JsonDocument.Parse(content, DocumentOptions);
            if (document.RootElement.ValueKind == JsonValueKind.Object)
            {
                return document;
            }
            document.Dispose();
            return null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static IEnumerable<DatasetRecord> Single(JsonDocument document)
    {
        using (document)
        {
            yield return new DatasetRecord(document.RootElement, 1);
        }
    }

    private static IEnumerable<DatasetRecord> Lines(ReadOnlyMemory<byte> content, string source)
    {
        int start = 0;
        int line = 0;
        while (start < content.Length)
        {
            line++;
            int newline = content.Span[start..].IndexOf((byte)'\n');
            int end = newline < 0 ? content.Length : start + newline;
            ReadOnlyMemory<byte> text = content[start..end];
            start = end + 1;
            if (IsBlank(text.Span))
            {
                continue;
            }
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(text, DocumentOptions);
            }
            catch (JsonException e)
            {
                throw new UserErrorException($"{source}, line {line}: malformed JSON ({Reason(e)}{Column(e)}); each line of a JSON Lines file must hold one complete JSON object", e);
            }
            using (document)
            {
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                {
                    throw new UserErrorException($"{source}, line {line}: expected a JSON object, found {Describe(document.RootElement.ValueKind)}; each line of a JSON Lines file must hold one object");
                }
                yield return new DatasetRecord(document.RootElement, line);
            }
        }
    }

    private static IEnumerable<DatasetRecord> Array(ReadOnlyMemory<byte> content, string source)
    {
        var documents = new List<(JsonDocument Document, int Line)>();
        try
        {
            ParseArray(content, source, documents);
        }
        catch
        {
            documents.ForEach(d => d.Document.Dispose());
            throw;
        }
        try
        {
            foreach (var (document, line) in documents)
            {
                yield return new DatasetRecord(document.RootElement, line);
            }
        }
        finally
        {
            documents.ForEach(d => d.Document.Dispose());
        }
    }

    private static void ParseArray(ReadOnlyMemory<byte> content, string source, List<(JsonDocument, int)> documents)
    {
        ReadOnlySpan<byte> span = content.Span;
        var reader = new Utf8JsonReader(span, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        int line = 1;
        int counted = 0;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
            {
                throw new UserErrorException($"{source}: expected a JSON array of objects (or JSON Lines: one object per line)");
            }
            int element = 0;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                int at = LineAt(span, reader.TokenStartIndex, ref counted, ref line);
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    throw new UserErrorException($"{source}, line {at}: element {element} of the array is {Describe(reader.TokenType)}, expected a JSON object");
                }
                documents.Add((JsonDocument.ParseValue(ref reader), at));
                element++;
            }
            if (reader.Read())
            {
                throw new UserErrorException($"{source}, line {LineAt(span, reader.TokenStartIndex, ref counted, ref line)}: unexpected content after the closing ']' of the array");
            }
        }
        catch (JsonException e)
        {
            string where = e.LineNumber is long l ? $", line {l + 1}" : "";
            throw new UserErrorException($"{source}{where}: malformed JSON ({Reason(e)}{Column(e)}); a .json dataset must be one JSON array of objects", e);
        }
    }

    /// <summary>The 1-based line of <paramref name="offset"/>, counting newlines incrementally from the last offset asked about.</summary>
    private static int LineAt(ReadOnlySpan<byte> span, long offset, ref int counted, ref int line)
    {
        line += span[counted..(int)offset].Count((byte)'\n');
        counted = (int)offset;
        return line;
    }

    private static byte FirstSignificantByte(ReadOnlySpan<byte> span)
    {
        if (span.StartsWith("\uFEFF"u8))
        {
            span = span[3..];
        }
        foreach (byte b in span)
        {
            if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n'))
            {
                return b;
            }
        }
        return 0;
    }

    private static ReadOnlyMemory<byte> SkipBom(ReadOnlyMemory<byte> content) =>
        content.Span.StartsWith("\uFEFF"u8) ? content[3..] : content;

    private static bool IsBlank(ReadOnlySpan<byte> text)
    {
        foreach (byte b in text)
        {
            if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r'))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>The exception's reason without System.Text.Json's own "Path: … | LineNumber: …" suffix.</summary>
    private static string Reason(JsonException e)
    {
        string message = e.Message;
        int cut = message.IndexOf(" Path: ", StringComparison.Ordinal);
        if (cut < 0)
        {
            cut = message.IndexOf(" LineNumber: ", StringComparison.Ordinal);
        }
        return (cut < 0 ? message : message[..cut]).TrimEnd('.', ' ');
    }

    private static string Column(JsonException e) => e.BytePositionInLine is long p ? $", at byte {p + 1} of the line" : "";

    private static string Describe(JsonValueKind kind) => JsonFields.KindName(kind);

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => token.ToString(),
    };
}
