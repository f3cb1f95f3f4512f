using CudaFinetune.Errors;
using CudaFinetune.IO;
using CudaFinetune.Tensors;

namespace CudaFinetune.HuggingFace.Safetensors;

/// <summary>
/// The weights of a Hugging Face model directory, one <c>model.safetensors</c> or shards listed by
/// <c>model.safetensors.index.json</c> (<c>weight_map</c>: tensor name → shard file, as <c>save_pretrained</c> writes
/// for models over <c>max_shard_size</c>), read as one set of named tensors. Every shard is opened and its header
/// checked up front — memory-mapped, so nothing is paged in before a tensor is copied out — and the index must agree
/// with the shards: every listed tensor in the shard it names, no shard tensor left unlisted.
/// </summary>
public sealed class SafetensorsSet : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly Dictionary<string, SafetensorsReader> _readerOf;
    private readonly List<SafetensorsReader> _readers;

    private SafetensorsSet(List<SafetensorsReader> readers, Dictionary<string, SafetensorsReader> readerOf, string description)
    {
        _readers = readers;
        _readerOf = readerOf;
        Description = description;
        Tensors = [.. readers.SelectMany(r => r.Tensors)];
    }

    /// <summary>What the set is, for messages: the single file, or the index.</summary>
    public string Description { get; }

    /// <summary>Every tensor of every file.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    /// <summary>Whether <paramref name="directory"/> holds weights in either layout.</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, SingleFileName)) || File.Exists(Path.Combine(directory, IndexFileName));

    /// <summary>Opens the directory's weights; <see cref="UserErrorException"/> for missing or inconsistent files.</summary>
    public static SafetensorsSet Open(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string single = Path.Combine(directory, SingleFileName), index = Path.Combine(directory, IndexFileName);
        if (File.Exists(single))
        {
            var reader = new SafetensorsReader(single);
            return new SafetensorsSet([reader], reader.Tensors.ToDictionary(t => t.Name, _ => reader, StringComparer.Ordinal), single);
        }
        if (!File.Exists(index))
        {
            throw new UserErrorException($"'{directory}' has neither {SingleFileName} nor {IndexFileName}; only safetensors weights are read (convert pytorch_model.bin with save_pretrained(safe_serialization=True))");
        }
        var weightMap = ReadWeightMap(index);
        var readers = new List<SafetensorsReader>();
        try
        {
            var byFile = new Dictionary<string, SafetensorsReader>(StringComparer.Ordinal);
            foreach (string file in weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                var reader = new SafetensorsReader(Path.Combine(directory, file));
                readers.Add(reader);
                byFile[file] = reader;
            }
            var readerOf = new Dictionary<string, SafetensorsReader>(StringComparer.Ordinal);
            foreach (var (name, file) in weightMap)
            {
                var reader = byFile[file];
                if (!reader.TryGetTensor(name, out _))
                {
                    throw new UserErrorException($"{index}: maps tensor '{name}' to {file}, which does not hold it");
                }
                readerOf[name] = reader;
            }
            var unlisted = readers.SelectMany(r => r.Tensors.Select(t => (r.Path, t.Name))).FirstOrDefault(x => !readerOf.ContainsKey(x.Name) || readerOf[x.Name].Path != x.Path);
            if (unlisted != default)
            {
                throw new UserErrorException($"{unlisted.Path}: holds tensor '{unlisted.Name}', which {IndexFileName} does not map to it (a shard from another save?)");
            }
            return new SafetensorsSet(readers, readerOf, index);
        }
        catch
        {
            readers.ForEach(r => r.Dispose());
            throw;
        }
    }

    private static Dictionary<string, string> ReadWeightMap(string index)
    {
        using var doc = JsonFields.Parse(File.ReadAllBytes(index), index);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in JsonFields.Root(doc, index).Object("weight_map").Entries())
        {
            string file = value.AsString();
            bool plain = file.Length > 0 && file == Path.GetFileName(file) && file != "." && file != "..";
            result[name] = plain ? file : throw value.Error($"maps to {JsonFields.Quote(file)}, which is not a file name in the model directory");
        }
        return result;
    }

    public bool TryGetTensor(string name, out SafetensorsTensorInfo info)
    {
        if (_readerOf.TryGetValue(name, out var reader))
        {
            return reader.TryGetTensor(name, out info);
        }
        info = null!;
        return false;
    }

    /// <summary>The named tensor's entry; <see cref="UserErrorException"/> when no file has it.</summary>
    public SafetensorsTensorInfo GetTensor(string name) => TryGetTensor(name, out var info)
        ? info
        : throw new UserErrorException($"{Description}: has no tensor named '{name}'");

    /// <summary>The file that holds tensor <paramref name="name"/> (for messages).</summary>
    public string FileOf(string name) => _readerOf.TryGetValue(name, out var reader) ? reader.Path : Description;

    /// <summary>Copies the named tensor into a host tensor, converting between floating dtypes (<see cref="SafetensorsReader.ReadInto"/>).</summary>
    public void ReadInto(string name, Tensor destination)
    {
        if (!_readerOf.TryGetValue(name, out var reader))
        {
            throw new UserErrorException($"{Description}: has no tensor named '{name}'");
        }
        reader.ReadInto(name, destination);
    }

    public void Dispose() => _readers.ForEach(r => r.Dispose());
}
