using CudaFinetune.Cuda.Kernels;

namespace CudaFinetune.Cuda.Runtime;

/// <summary>Raw device memory, without caching: what <see cref="DeviceAllocator"/> sits on.</summary>
public interface IRawDeviceMemory
{
    /// <summary>The device, for messages ("NVIDIA H100 80GB HBM3 (GPU 0)", "emulator").</summary>
    string Name { get; }

    /// <summary>Allocates <paramref name="bytes"/> (256-byte aligned); false when the device is out of memory.</summary>
    bool TryAllocate(nuint bytes, out DevicePtr address);

    void Free(DevicePtr address);
}

/// <summary>
/// Where kernels run and their memory lives: a GPU (<see cref="CudaDevice"/>) or the emulator
/// (<see cref="EmulatedDevice"/>). Launches, fills and copies go to the device's one compute
/// stream in order; copies to the host wait for everything before them.
/// </summary>
public unsafe interface IDevice : IScratchLauncher, IRawDeviceMemory, IDisposable
{
    /// <summary>The caching allocator that tensors and workspaces take their memory from.</summary>
    DeviceAllocator Memory { get; }

    /// <summary>Scratch for a launcher, from <see cref="Memory"/>.</summary>
    DevicePtr IScratchLauncher.RentScratch(long bytes) => Memory.Allocate(bytes).Start;

    void IScratchLauncher.ReturnScratch(DevicePtr scratch, long bytes) => Memory.Free(new DeviceBuffer(scratch, bytes, DeviceAllocator.RoundedSize(bytes)));

    void CopyToDevice(DevicePtr destination, void* source, nuint bytes);

    void CopyToHost(void* destination, DevicePtr source, nuint bytes);

    /// <summary>Copies between two device buffers, in stream order (the ranges must not overlap).</summary>
    void CopyWithinDevice(DevicePtr destination, DevicePtr source, nuint bytes);

    void Fill(DevicePtr destination, byte value, nuint bytes);

    /// <summary>Waits for all work queued on the device; a kernel fault surfaces here.</summary>
    void Synchronize();
}

/// <summary>Typed copies between spans and device memory.</summary>
public static unsafe class DeviceCopies
{
    public static void Upload<T>(this IDevice device, ReadOnlySpan<T> source, DevicePtr destination)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(device);
        fixed (T* s = source)
        {
            device.CopyToDevice(destination, s, (nuint)(source.Length * sizeof(T)));
        }
    }

    public static void Download<T>(this IDevice device, DevicePtr source, Span<T> destination)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(device);
        fixed (T* d = destination)
        {
            device.CopyToHost(d, source, (nuint)(destination.Length * sizeof(T)));
        }
    }

    /// <summary>A buffer from the device's allocator holding a copy of <paramref name="values"/>.</summary>
    public static DeviceBuffer Upload<T>(this IDevice device, ReadOnlySpan<T> values)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(device);
        var buffer = device.Memory.Allocate((long)values.Length * sizeof(T));
        device.Upload(values, buffer.Start);
        return buffer;
    }

    /// <summary>The first <paramref name="count"/> elements of a device buffer.</summary>
    public static T[] Download<T>(this IDevice device, DevicePtr source, int count)
        where T : unmanaged
    {
        var values = new T[count];
        device.Download(source, values.AsSpan());
        return values;
    }
}
