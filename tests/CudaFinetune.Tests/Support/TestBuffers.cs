using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;

namespace CudaFinetune.Tests.Support;

/// <summary>
/// Test data on a device, from its caching allocator, addressed as the raw <c>ulong</c> the interop layer takes,
/// and freed together. Copies go to the device's stream, so work queued on <c>device.Stream</c> sees them, and a
/// download waits for that work.
/// </summary>
internal sealed class TestBuffers(IDevice device)
{
    private readonly List<DeviceBuffer> _owned = [];

    public ulong Upload<T>(T[] values)
        where T : unmanaged
    {
        var buffer = device.Upload<T>(values);
        _owned.Add(buffer);
        return buffer.Start.Address;
    }

    public T[] Download<T>(ulong address, int count)
        where T : unmanaged => device.Download<T>(new DevicePtr(address), count);

    public void FreeAll()
    {
        foreach (var buffer in _owned)
        {
            device.Memory.Free(buffer);
        }
        _owned.Clear();
    }
}
