namespace CudaFinetune.Tensors;

/// <summary>
/// A typed, shaped view of a device buffer. A tensor either owns its storage (made by a backend)
/// or is a view of another tensor's storage (<see cref="Reshape"/>, <see cref="SliceRows"/>);
/// disposing a view never frees the storage.
/// </summary>
public sealed unsafe class Tensor : IDisposable
{
    private readonly bool _ownsStorage;

    public Tensor(TensorStorage storage, DType dtype, Shape shape, long elementOffset = 0, bool ownsStorage = true)
    {
        ArgumentNullException.ThrowIfNull(storage);
        ArgumentNullException.ThrowIfNull(shape);
        long end = checked((elementOffset + shape.ElementCount) * dtype.SizeInBytes());
        if (elementOffset < 0 || end > storage.ByteLength)
        {
            throw new ArgumentOutOfRangeException(nameof(shape), $"a {dtype} tensor of shape {shape} at element {elementOffset} does not fit a storage of {storage.ByteLength} bytes");
        }
        Storage = storage;
        DType = dtype;
        Shape = shape;
        ElementOffset = elementOffset;
        _ownsStorage = ownsStorage;
    }

    public TensorStorage Storage { get; }

    public DType DType { get; }

    public Shape Shape { get; }

    /// <summary>Offset of the first element, in elements of <see cref="DType"/>, into the storage.</summary>
    public long ElementOffset { get; }

    public long ElementCount => Shape.ElementCount;

    public Device Device => Storage.Device;

    /// <summary>The same elements seen with another shape of equal element count.</summary>
    public Tensor Reshape(params ReadOnlySpan<int> dims)
    {
        var shape = new Shape(dims);
        if (shape.ElementCount != ElementCount)
        {
            throw new ArgumentException($"cannot view {Shape} ({ElementCount} elements) as {shape}");
        }
        return new Tensor(Storage, DType, shape, ElementOffset, ownsStorage: false);
    }

    /// <summary>Elements [offset, offset + shape's count) of the flattened tensor, seen with <paramref name="shape"/>.</summary>
    public Tensor View(long offset, Shape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (offset < 0 || offset > ElementCount - shape.ElementCount)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"elements [{offset}, {offset + shape.ElementCount}) outside a tensor of {ElementCount}");
        }
        return new Tensor(Storage, DType, shape, ElementOffset + offset, ownsStorage: false);
    }

    /// <summary>Rows [start, start+count) of the tensor seen as a 2-D [Rows, Columns] matrix.</summary>
    public Tensor SliceRows(int start, int count)
    {
        int rows = Shape.Rows, cols = Shape.Columns;
        if (start < 0 || count < 0 || start + count > rows)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) outside a tensor of {rows} rows");
        }
        return new Tensor(Storage, DType, new Shape(count, cols), ElementOffset + (long)start * cols, ownsStorage: false);
    }

    /// <summary>The elements as a host span; only for tensors in host memory.</summary>
    public Span<T> HostSpan<T>() where T : unmanaged
    {
        if (Storage is not HostStorage host)
        {
            throw new InvalidOperationException($"tensor lives on {Device}; copy it to the host first");
        }
        return host.AsSpan<T>().Slice(checked((int)ElementOffset), checked((int)ElementCount));
    }

    /// <summary>Address of the first element of a host tensor.</summary>
    public void* HostAddress => Storage is HostStorage host
        ? (byte*)host.Address + ElementOffset * DType.SizeInBytes()
        : throw new InvalidOperationException($"tensor lives on {Device}; copy it to the host first");

    /// <summary>Address of the first element of a host tensor, typed as its dtype's host type.</summary>
    public T* HostPointer<T>() where T : unmanaged
    {
        if (Storage is not HostStorage host)
        {
            throw new InvalidOperationException($"tensor lives on {Device}; copy it to the host first");
        }
        if (DType.HostElementType() != typeof(T))
        {
            throw new InvalidOperationException($"tensor holds {DType}, not {typeof(T).Name}");
        }
        return (T*)host.Address + ElementOffset;
    }

    public void Dispose()
    {
        if (_ownsStorage)
        {
            Storage.Dispose();
        }
    }

    public override string ToString() => $"Tensor({DType}, {Shape}, {Device})";
}
