using System.Text.Json;
using CudaFinetune.Errors;
using CudaFinetune.IO;
using CudaFinetune.Tensors;

namespace CudaFinetune.HuggingFace.Safetensors;

/// <summary>
/// Parses and validates a safetensors JSON header. Kept apart from the file mapping so that every
/// rule of the format is checked in one place before a single tensor byte is touched: known dtypes,
/// non-negative integer shapes, offsets inside the data buffer, byte length = elements × dtype
/// size, and tensors covering the data buffer exactly (no holes, no overlaps), as the safetensors
/// specification and its reference implementation require. Every failure is a
/// <see cref="UserErrorException"/> that names the file and, where there is one, the tensor.
/// </summary>
internal sealed class SafetensorsHeader
{
    public const string MetadataKey = "__metadata__";

    /// <summary>Largest header accepted, as in the reference implementation (100 MB).</summary>
    public const long MaxHeaderLength = 100_000_000;

    private SafetensorsHeader(IReadOnlyList<SafetensorsTensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Tensors = tensors;
        Metadata = metadata;
    }

    /// <summary>The tensors in data-buffer order.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <param name="json">The header bytes (UTF-8 JSON, possibly padded with trailing spaces).</param>
    /// <param name="dataLength">Bytes in the file after the header: the data buffer.</param>
    /// <param name="file">The file's name, for messages.</param>
    public static SafetensorsHeader Parse(ReadOnlyMemory<byte> json, long dataLength, string file)
    {
        using (JsonDocument document = JsonFields.Parse(json, problem => Error(file, $"the header is {problem}")))
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Error(file, "the header is not a JSON object");
            }
            var tensors = new List<SafetensorsTensorInfo>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            IReadOnlyDictionary<string, string> metadata = new Dictionary<string, string>();
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                if (!names.Add(property.Name))
                {
                    throw Error(file, $"the header names '{property.Name}' twice");
                }
                if (property.Name == MetadataKey)
                {
                    metadata = ParseMetadata(property.Value, file);
                }
                else
                {
                    tensors.Add(ParseTensor(property.Name, property.Value, dataLength, file));
                }
            }
            CheckCoverage(tensors, dataLength, file);
            return new SafetensorsHeader(tensors, metadata);
        }
    }

    private static Dictionary<string, string> ParseMetadata(JsonElement value, string file)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, entry) in JsonFields.At(value, MetadataKey, problem => Error(file, problem)).Entries())
        {
            if (!metadata.TryAdd(name, entry.AsString()))
            {
                throw Error(file, $"'{MetadataKey}' names '{name}' twice");
            }
        }
        return metadata;
    }

    private static SafetensorsTensorInfo ParseTensor(string name, JsonElement entry, long dataLength, string file)
    {
        if (entry.ValueKind != JsonValueKind.Object)
        {
            throw Error(file, name, "the entry is not an object with dtype, shape and data_offsets");
        }
        var fields = JsonFields.At(entry, "", problem => Error(file, name, problem));
        var dtypeName = fields.Member("dtype");
        DType dtype = DTypeExtensions.FromSafetensorsName(dtypeName.AsString()) ?? throw dtypeName.Wrong("a dtype CudaFinetune reads (F32, F64, BF16, F16, I32)");
        int[] dims = [.. fields.Array("shape").Select(dim => dim.AsInt(0))];
        string shapeText = fields.Member("shape").Raw;
        Shape shape;
        try
        {
            shape = new Shape(dims);
        }
        catch (OverflowException)
        {
            throw Error(file, name, $"shape {shapeText} has more elements than fit in 64 bits");
        }

        if (!entry.TryGetProperty("data_offsets", out JsonElement offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !TryGetOffset(offsets[0], out long begin) || !TryGetOffset(offsets[1], out long end))
        {
            throw Error(file, name, "'data_offsets' must be an array of two non-negative integers [begin, end]");
        }
        if (end < begin || end > dataLength)
        {
            throw Error(file, name, $"data_offsets [{begin}, {end}] lie outside the {dataLength}-byte data buffer (is the file truncated?)");
        }
        long expected;
        try
        {
            expected = checked(shape.ElementCount * dtype.SizeInBytes());
        }
        catch (OverflowException)
        {
            throw Error(file, name, $"shape {shape} is too large");
        }
        if (end - begin != expected)
        {
            throw Error(file, name, $"data_offsets [{begin}, {end}] span {end - begin} bytes, but a {dtype} tensor of shape {shape} needs {expected}");
        }
        return new SafetensorsTensorInfo(name, dtype, shape, begin, end - begin);
    }

    private static bool TryGetOffset(JsonElement element, out long value)
    {
        value = 0;
        return element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out value) && value >= 0;
    }

    /// <summary>Sorts <paramref name="tensors"/> by offset and checks they tile the data buffer exactly.</summary>
    private static void CheckCoverage(List<SafetensorsTensorInfo> tensors, long dataLength, string file)
    {
        tensors.Sort((a, b) => a.Offset != b.Offset ? a.Offset.CompareTo(b.Offset) : a.Length.CompareTo(b.Length));
        long covered = 0;
        SafetensorsTensorInfo? previous = null;
        foreach (SafetensorsTensorInfo t in tensors)
        {
            if (t.Offset < covered)
            {
                throw Error(file, t.Name, $"data_offsets [{t.Offset}, {t.Offset + t.Length}] overlap tensor '{previous!.Name}' at [{previous.Offset}, {previous.Offset + previous.Length}]");
            }
            if (t.Offset > covered)
            {
                throw Error(file, t.Name, $"bytes [{covered}, {t.Offset}) of the data buffer before it belong to no tensor");
            }
            covered = t.Offset + t.Length;
            previous = t;
        }
        if (covered != dataLength)
        {
            throw Error(file, $"bytes [{covered}, {dataLength}) at the end of the data buffer belong to no tensor");
        }
    }

    private static UserErrorException Error(string file, string message) =>
        new($"{file}: not a valid safetensors file: {message}");

    private static UserErrorException Error(string file, string tensor, string message) =>
        new($"{file}: not a valid safetensors file: tensor '{tensor}': {message}");
}
