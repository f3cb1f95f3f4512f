using CudaFinetune.Tensors;

namespace CudaFinetune.Model;

/// <summary>A named weight tensor, with a gradient buffer when it is trained.</summary>
public sealed class Parameter : IDisposable
{
    public Parameter(string name, Tensor value, Tensor? gradient = null)
    {
        Name = name;
        Value = value;
        Gradient = gradient;
    }

    /// <summary>The Hugging Face (or PEFT) tensor name.</summary>
    public string Name { get; }

    public Tensor Value { get; }

    /// <summary>Accumulated gradient, same shape as <see cref="Value"/>; null for frozen weights.</summary>
    public Tensor? Gradient { get; internal set; }

    /// <summary>
    /// The full-precision copy a trained weight keeps when <see cref="Value"/> is in a lower precision (mixed precision
    /// on the cuda backends): the optimizer updates it and rounds it into Value; checkpoints and exports save it.
    /// </summary>
    public Tensor? Master { get; internal set; }

    /// <summary>The weight at full precision: <see cref="Master"/> when there is one, else <see cref="Value"/>.</summary>
    public Tensor FullPrecision => Master ?? Value;

    public bool Trainable => Gradient is not null;

    /// <summary>Rounds <see cref="Master"/> into <see cref="Value"/> (after the master changed); nothing without a master.</summary>
    public void RefreshValue(Backends.IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (Master is not null)
        {
            backend.Copy(Master, Value);
        }
    }

    public void Dispose()
    {
        Value.Dispose();
        Gradient?.Dispose();
        Master?.Dispose();
    }

    public override string ToString() => $"{Name} {Value.Shape}{(Trainable ? " trainable" : "")}";
}

/// <summary>Parameters in a fixed insertion order, looked up by name.</summary>
public sealed class ParameterSet : IDisposable
{
    private readonly List<Parameter> _ordered = [];
    private readonly Dictionary<string, Parameter> _byName = new(StringComparer.Ordinal);

    public int Count => _ordered.Count;

    public IReadOnlyList<Parameter> All => _ordered;

    public Parameter this[string name] => _byName.TryGetValue(name, out var p)
        ? p
        : throw new KeyNotFoundException($"no parameter named '{name}'");

    public bool TryGet(string name, out Parameter parameter) => _byName.TryGetValue(name, out parameter!);

    public Parameter Add(Parameter parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        if (!_byName.TryAdd(parameter.Name, parameter))
        {
            throw new ArgumentException($"duplicate parameter name '{parameter.Name}'", nameof(parameter));
        }
        _ordered.Add(parameter);
        return parameter;
    }

    public IEnumerable<Parameter> Trainable => _ordered.Where(p => p.Trainable);

    public void Dispose()
    {
        foreach (var p in _ordered)
        {
            p.Dispose();
        }
        _ordered.Clear();
        _byName.Clear();
    }
}
