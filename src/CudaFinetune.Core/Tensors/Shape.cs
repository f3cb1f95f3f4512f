using System.Collections.Immutable;

namespace CudaFinetune.Tensors;

/// <summary>An immutable tensor shape (row-major, outermost dimension first).</summary>
public sealed class Shape : IEquatable<Shape>
{
    private readonly ImmutableArray<int> _dims;

    public Shape(params ReadOnlySpan<int> dims)
    {
        long count = 1;
        foreach (int d in dims)
        {
            if (d < 0)
            {
                throw new ArgumentException($"shape dimensions must be non-negative, got [{string.Join(", ", dims.ToArray())}]", nameof(dims));
            }
            count = checked(count * d);
        }
        _dims = [.. dims];
        ElementCount = count;
    }

    public int Rank => _dims.Length;

    public long ElementCount { get; }

    public int this[int axis] => _dims[axis < 0 ? _dims.Length + axis : axis];

    public ImmutableArray<int> Dimensions => _dims;

    /// <summary>Product of all dimensions but the last: the row count of the 2-D view.</summary>
    public int Rows => Rank == 0 ? 1 : checked((int)(ElementCount / Math.Max(1, _dims[^1])));

    /// <summary>The last dimension: the row length of the 2-D view.</summary>
    public int Columns => Rank == 0 ? 1 : _dims[^1];

    public bool Equals(Shape? other) => other is not null && _dims.AsSpan().SequenceEqual(other._dims.AsSpan());

    public override bool Equals(object? obj) => Equals(obj as Shape);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (int d in _dims)
        {
            hash.Add(d);
        }
        return hash.ToHashCode();
    }

    public override string ToString() => "[" + string.Join(", ", _dims) + "]";

    public static bool operator ==(Shape? left, Shape? right) => left is null ? right is null : left.Equals(right);

    public static bool operator !=(Shape? left, Shape? right) => !(left == right);
}
