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
}
