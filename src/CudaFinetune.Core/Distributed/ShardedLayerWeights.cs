using CudaFinetune.Backends;
using CudaFinetune.Checkpoints;
using CudaFinetune.Errors;
using CudaFinetune.HuggingFace;
using CudaFinetune.HuggingFace.Safetensors;
using CudaFinetune.IO;
using CudaFinetune.Model;
using CudaFinetune.Tensors;

namespace CudaFinetune.Distributed;

/// <summary>
/// ZeRO stage 3 for the frozen decoder-layer weights (LoRA runs): each layer's seven projection weights, laid end to end and padded
/// to a multiple of WorldSize × alignment, are split into equal parts, and a rank keeps only its part of every layer.
/// One layer-sized buffer holds the layer in use: <see cref="Gather"/> all-gathers a layer into it before the model
/// reads it, forward and backward, and every layer's parameters are views of that buffer. A rank holds 1/W of the layer
/// projections plus one layer; the norms, the embedding and the head stay whole.
/// </summary>
public sealed class ShardedLayerWeights : ILayerWeights, IShardedWeights, IDisposable
{
    private readonly IProcessGroup _group;
    private readonly Tensor _shards, _layer;
    private readonly Tensor[] _parts;
    private readonly Dictionary<string, (int Layer, Tensor View)> _views = new(StringComparer.Ordinal);
    private readonly (string Suffix, int[] Shape, long Offset)[] _layout;
    private int _held = -1;

    public ShardedLayerWeights(IBackend backend, IProcessGroup group, LlamaConfig config, int alignment = 64)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(config);
        _group = group;
        string prefix = LlamaTensorNames.LayerPrefix(0);
        var layout = new List<(string, int[], long)>();
        long offset = 0;
        // The seven projections; the two norms are tiny and cross layer boundaries (layer l's forward ends in layer l + 1's input norm), so they stay whole.
        var projections = LlamaTensorNames.LinearModules.Select(m => LlamaTensorNames.LinearWeight(0, m)).ToHashSet(StringComparer.Ordinal);
        foreach (var (name, shape) in LlamaTensorNames.BaseWeights(config).Where(w => projections.Contains(w.Name)))
        {
            layout.Add((name[prefix.Length..], shape, offset));
            offset += new Shape(shape).ElementCount;
        }
        _layout = [.. layout];
        LayerElements = offset;
        long quantum = (long)group.WorldSize * alignment;
        PaddedLayer = (offset + quantum - 1) / quantum * quantum;
        PartElements = PaddedLayer / group.WorldSize;
        var dtype = backend.ComputeType;
        _shards = backend.Allocate(dtype, new Shape(checked((int)(PartElements * config.NumHiddenLayers))));
        _layer = backend.Allocate(dtype, new Shape(checked((int)PaddedLayer)));
        _parts = [.. Enumerable.Range(0, config.NumHiddenLayers).Select(l => _shards.View(l * PartElements, new Shape(checked((int)PartElements))))];
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            foreach (var (suffix, shape, at) in _layout)
            {
                _views[LlamaTensorNames.LayerPrefix(l) + suffix] = (l, _layer.View(at, new Shape(shape)));
            }
        }
    }

    /// <summary>Elements of one layer's base weights.</summary>
    public long LayerElements { get; }

    /// <summary>One layer padded to a multiple of WorldSize × alignment: the gather buffer's size.</summary>
    public long PaddedLayer { get; }

    /// <summary>Elements of each layer this rank keeps.</summary>
    public long PartElements { get; }

    public Tensor? View(string name) => _views.TryGetValue(name, out var entry) ? entry.View : null;

    /// <summary>Reads each layer tensor from the file into host memory and keeps this rank's part of it.</summary>
    public unsafe void Load(SafetensorsSet reader, IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(backend);
        long begin = _group.Rank * PartElements, end = begin + PartElements;
        int size = _shards.DType.SizeInBytes();
        foreach (var (name, (layer, view)) in _views)
        {
            var info = reader.GetTensor(name);
            if (info.Shape != view.Shape)
            {
                throw new UserErrorException($"{reader.FileOf(name)}: tensor '{name}' has shape {info.Shape}, but config.json needs {view.Shape}; the weights and config.json do not belong together");
            }
            long at = view.ElementOffset - _layer.ElementOffset;
            long from = Math.Max(begin, at), to = Math.Min(end, at + view.ElementCount);
            if (from >= to)
            {
                continue;
            }
            using var staging = new Tensor(new HostStorage(view.DType, view.ElementCount), view.DType, view.Shape);
            reader.ReadInto(name, staging);
            var bytes = new ReadOnlySpan<byte>((byte*)staging.HostAddress + (from - at) * size, checked((int)((to - from) * size)));
            TensorBytes.CopyInRange(backend, bytes, _parts[layer], (from - begin) * size);
        }
    }

    /// <summary>All-gathers layer <paramref name="layer"/> into the buffer every layer's views read (nothing when it is there already).</summary>
    public void Gather(int layer)
    {
        if (_held != layer)
        {
            _group.AllGather(_parts[layer], _layer);
            _held = layer;
        }
    }

    public void Dispose()
    {
        _shards.Dispose();
        _layer.Dispose();
    }
}
