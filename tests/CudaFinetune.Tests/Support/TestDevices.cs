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
    public static IDevice Open(KernelDevice kind) => kind == KernelDevice.Emulator ? EmulatedDevice.Open() : OpenGpu();

    /// <summary>GPU 0, or an Ignore naming what is missing: the GPU, or the library a test needs besides (cuBLASLt, NCCL).</summary>
    public static CudaDevice OpenGpu(Func<CudaEnvironmentReport, LibraryInfo>? library = null)
    {
        var report = CudaEnvironment.Probe();
        if (report.Gpus.Count == 0)
        {
            Assert.Ignore($"no GPU here ({(report.Driver.Found ? report.DriverError ?? "the driver lists no devices" : "no CUDA driver found")}); the emulator runs the same kernels");
        }
        var needed = library?.Invoke(report);
        if (needed is { Found: false })
        {
            Assert.Ignore($"no {needed.Name} here; looked for it at:{Environment.NewLine}{needed.Where}");
        }
        return CudaDevice.Open();
    }
}
