using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace CudaFinetune.Tensors;

/// <summary>A block of memory on one device that tensors view.</summary>
public abstract class TensorStorage : IDisposable
{
    protected TensorStorage(Device device, long byteLength)
    {
        Device = device;
        ByteLength = byteLength;
    }

    public Device Device { get; }

    public long ByteLength { get; }

    public bool IsDisposed { get; private set; }

    public void Dispose()
    {
        if (!IsDisposed)
        {
            IsDisposed = true;
            Release();
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the memory. Called once.</summary>
    protected abstract void Release();
}

/// <summary>
/// Host memory held in a pinned managed array whose element type is the dtype's host type
/// (float[], double[], int[] or ushort[]): the GC owns it, spans are bounds-checked, and kernels
/// may keep raw pointers to it because it never moves.
/// </summary>
public sealed unsafe class HostStorage : TensorStorage
{
    private Array? _data;
    private void* _pointer;

    public HostStorage(DType dtype, long elementCount)
        : base(Device.Cpu, checked(elementCount * dtype.SizeInBytes()))
    {
        if (elementCount > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(elementCount), elementCount, "host tensors are limited to Array.MaxLength elements");
        }
        int n = (int)elementCount;
        _data = dtype switch
        {
            DType.F32 => GC.AllocateArray<float>(n, pinned: true),
            DType.F64 => GC.AllocateArray<double>(n, pinned: true),
            DType.I32 => GC.AllocateArray<int>(n, pinned: true),
            DType.BF16 or DType.F16 => GC.AllocateArray<ushort>(n, pinned: true),
            _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
        };
        _pointer = Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_data));
        DType = dtype;
    }

    /// <summary>Address of element 0; valid until the storage is disposed.</summary>
    public void* Address => _data is null ? throw new ObjectDisposedException(nameof(HostStorage)) : _pointer;

    public DType DType { get; }

    /// <summary>The whole storage as a span of <typeparamref name="T"/>, which must be the dtype's host type.</summary>
    public Span<T> AsSpan<T>() where T : unmanaged
    {
        Array data = _data ?? throw new ObjectDisposedException(nameof(HostStorage));
        if (data.GetType().GetElementType() != typeof(T))
        {
            throw new InvalidOperationException($"storage holds {DType} ({data.GetType().GetElementType()!.Name}), not {typeof(T).Name}");
        }
        return MemoryMarshal.CreateSpan(ref Unsafe.As<byte, T>(ref MemoryMarshal.GetArrayDataReference(data)), data.Length);
    }

    protected override void Release()
    {
        _data = null;
        _pointer = null;
    }
}
