using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Ops;

/// <summary>Our PTX kernels on a real GPU through the driver API, against the CPU backend. Ignored (with the reason) where there is no GPU.</summary>
[TestFixture]
public sealed unsafe class CudaKernelTests
{
    private CudaDevice _gpu = null!;

    [OneTimeSetUp]
    public void OpenGpu()
    {
        var report = CudaEnvironment.Probe();
        if (report.Gpus.Count == 0)
        {
            Assert.Ignore($"no GPU here ({(report.Driver.Found ? report.DriverError ?? "the driver lists no devices" : "no CUDA driver found")})); EmulatedKernelTests run the same kernels on the CPU");
        }
        _gpu = CudaDevice.Open();
    }

    [OneTimeTearDown]
    public void CloseGpu() => _gpu?.Dispose();

    private static ulong Upload(float[] values)
    {
        ulong pointer;
        CudaException.ThrowIfFailed(CudaDriver.MemAlloc(&pointer, (nuint)(values.Length * sizeof(float))));
        fixed (float* v = values)
        {
            CudaException.ThrowIfFailed(CudaDriver.MemcpyHtoD(pointer, v, (nuint)(values.Length * sizeof(float))));
        }
        return pointer;
    }

    private static float[] Download(ulong pointer, int count)
    {
        var values = new float[count];
        fixed (float* v = values)
        {
            CudaException.ThrowIfFailed(CudaDriver.MemcpyDtoH(v, pointer, (nuint)(count * sizeof(float))));
        }
        CudaException.ThrowIfFailed(CudaDriver.MemFree(pointer));
        return values;
    }

    [TestCase(1, 32, 32)]
    [TestCase(37, 300, 128)]
    [TestCase(5, 4096, 1024)]
    public void RmsNorm_forward_matches_the_cpu_backend(int rows, int cols, int threads)
    {
        var reference = RmsNormCase.Create(rows, cols);
        float[] x = reference.X, w = reference.Weight;
        ulong dx = Upload(x), dw = Upload(w), dy = Upload(new float[rows * cols]), dr = Upload(new float[rows]);
        RmsNormKernels.ForwardF32(_gpu, new DevicePtr(dx), new DevicePtr(dw), new DevicePtr(dy), new DevicePtr(dr), rows, cols, RmsNormCase.Epsilon, threads);
        _gpu.Synchronize();
        float[] y = Download(dy, rows * cols), inv = Download(dr, rows);
        CudaException.ThrowIfFailed(CudaDriver.MemFree(dx));
        CudaException.ThrowIfFailed(CudaDriver.MemFree(dw));
        Assert.That(y, Is.EqualTo(reference.Y).Within(1e-5f), "y");
        Assert.That(inv, Is.EqualTo(reference.InvRms).Within(1e-5f), "inv_rms");
    }
}
