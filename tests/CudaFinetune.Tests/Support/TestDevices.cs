using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using NUnit.Framework;

namespace CudaFinetune.Tests.Support;

/// <summary>Where a kernel test runs: the emulator (any machine) or a real GPU (ignored, with the reason, where there is none).</summary>
public enum KernelDevice
{
    Emulator,
    Gpu,
}

internal static class TestDevices
{
    public static IDevice Open(KernelDevice kind)
    {
        if (kind == KernelDevice.Emulator)
        {
            return EmulatedDevice.Open();
        }
        var report = CudaEnvironment.Probe();
        if (report.Gpus.Count == 0)
        {
            Assert.Ignore($"no GPU here ({(report.Driver.Found ? report.DriverError ?? "the driver lists no devices" : "no CUDA driver found")}); the emulator runs the same kernels");
        }
        return CudaDevice.Open();
    }

    /// <summary>Device memory holding <paramref name="values"/>.</summary>
    public static DevicePtr Put<T>(this IDevice device, List<DeviceBuffer> owned, ReadOnlySpan<T> values)
        where T : unmanaged
    {
        var buffer = device.Upload(values);
        owned.Add(buffer);
        return buffer.Start;
    }

    /// <summary>Device memory of <paramref name="count"/> elements, every byte 0xFF (NaN for floats), so that what a kernel does not write shows.</summary>
    public static unsafe DevicePtr Poisoned<T>(this IDevice device, List<DeviceBuffer> owned, int count)
        where T : unmanaged
    {
        var buffer = device.Memory.Allocate((long)count * sizeof(T));
        device.Fill(buffer.Start, 0xFF, (nuint)buffer.Bytes);
        owned.Add(buffer);
        return buffer.Start;
    }

    public static void FreeAll(this IDevice device, List<DeviceBuffer> owned)
    {
        foreach (var buffer in owned)
        {
            device.Memory.Free(buffer);
        }
        owned.Clear();
    }
}
