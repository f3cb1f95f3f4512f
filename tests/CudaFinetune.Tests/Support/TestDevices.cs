// Shared fixture: the one place tests decide where device code runs. A GPU-only test calls RequireGpu or OpenGpu (or
// derives from GpuFixture), which end it with Assert.Ignore and the reason where there is no GPU or no library it
// needs; a test of the no-GPU path calls RequireNoGpu. Kernel tests run on the emulator everywhere and on a GPU where
// there is one (KernelDevice).
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
        RequireGpu(library);
        return CudaDevice.Open();
    }

    /// <summary>Returns where there is a GPU (and <paramref name="library"/>, if named); ends the test with an Ignore naming what is missing otherwise.</summary>
    public static void RequireGpu(Func<CudaEnvironmentReport, LibraryInfo>? library = null)
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
    }

    /// <summary>For tests of what happens without a GPU: ends the test with an Ignore where this machine has one.</summary>
    public static void RequireNoGpu()
    {
        if (CudaEnvironment.Probe().Gpus.Count > 0)
        {
            Assert.Ignore("this machine has a GPU");
        }
    }
}
