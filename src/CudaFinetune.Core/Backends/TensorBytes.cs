using System.Runtime.InteropServices;
using CudaFinetune.Checkpoints;
using CudaFinetune.Tensors;

namespace CudaFinetune.Backends;

/// <summary>Copies a tensor's raw bytes to and from host memory, directly for host tensors and through the backend otherwise.</summary>
internal static unsafe class TensorBytes
{
    public static long Length(Tensor tensor) => tensor.ElementCount * tensor.DType.SizeInBytes();

    public static void CopyOut(IBackend backend, Tensor source, byte* destination)
    {
        long bytes = Length(source);
        if (source.Storage is HostStorage)
        {
            Buffer.MemoryCopy(source.HostAddress, destination, bytes, bytes);
            return;
        }
        int count = checked((int)source.ElementCount);
        switch (source.DType)
        {
            case DType.F32: backend.CopyToHost(source, new Span<float>(destination, count)); break;
            case DType.F64: backend.CopyToHost(source, new Span<double>(destination, count)); break;
            case DType.BF16 or DType.F16: backend.CopyToHost(source, new Span<ushort>(destination, count)); break;
            case DType.I32: backend.CopyToHost(source, new Span<int>(destination, count)); break;
            default: throw new ArgumentOutOfRangeException(nameof(source), source.DType, "unknown dtype");
        }
    }

    /// <summary>Copies <paramref name="bytes"/> into any tensor from byte <paramref name="offset"/> on (whole elements), through a view of that stretch for device tensors.</summary>
    public static void CopyInRange(IBackend backend, ReadOnlySpan<byte> bytes, Tensor destination, long offset)
    {
        int size = destination.DType.SizeInBytes();
        if (destination.Storage is HostStorage || (offset == 0 && bytes.Length == Length(destination)))
        {
            CopyIn(backend, bytes, destination, offset);
            return;
        }
        using var view = destination.View(offset / size, new Shape(bytes.Length / size));
        CopyIn(backend, bytes, view, 0);
    }

    /// <summary>Copies <paramref name="bytes"/> into the tensor starting at byte <paramref name="offset"/> (host tensors), or the whole tensor at once (others).</summary>
    public static void CopyIn(IBackend backend, ReadOnlySpan<byte> bytes, Tensor destination, long offset)
    {
        if (destination.Storage is HostStorage)
        {
            bytes.CopyTo(new Span<byte>((byte*)destination.HostAddress + offset, bytes.Length));
            return;
        }
        if (offset != 0 || bytes.Length != Length(destination))
        {
            throw new ArgumentException("device tensors are copied whole", nameof(bytes));
        }
        switch (destination.DType)
        {
            case DType.F32: backend.CopyFromHost(MemoryMarshal.Cast<byte, float>(bytes), destination); break;
            case DType.F64: backend.CopyFromHost(MemoryMarshal.Cast<byte, double>(bytes), destination); break;
            case DType.BF16 or DType.F16: backend.CopyFromHost(MemoryMarshal.Cast<byte, ushort>(bytes), destination); break;
            case DType.I32: backend.CopyFromHost(MemoryMarshal.Cast<byte, int>(bytes), destination); break;
            default: throw new ArgumentOutOfRangeException(nameof(destination), destination.DType, "unknown dtype");
        }
    }
}
