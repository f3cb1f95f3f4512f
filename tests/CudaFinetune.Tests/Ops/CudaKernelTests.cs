using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;
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
        var rng = new Random(rows * 31 + cols);
        float[] x = [.. Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() * 4 - 2))];
        float[] w = [.. Enumerable.Range(0, cols).Select(_ => (float)(rng.NextDouble() + 0.5))];
        using var cpu = new CpuBackend(threads: 1);
        using var xt = cpu.Allocate(DType.F32, new Shape(rows, cols));
        using var wt = cpu.Allocate(DType.F32, new Shape(cols));
        using var yt = cpu.Allocate(DType.F32, new Shape(rows, cols));
        using var rt = cpu.Allocate(DType.F32, new Shape(rows));
        cpu.CopyFromHost<float>(x, xt);
        cpu.CopyFromHost<float>(w, wt);
        cpu.RmsNormForward(xt, wt, 1e-5, yt, rt);

        ulong dx = Upload(x), dw = Upload(w), dy = Upload(new float[rows * cols]), dr = Upload(new float[rows]);
        RmsNormKernels.ForwardF32(_gpu, new DevicePtr(dx), new DevicePtr(dw), new DevicePtr(dy), new DevicePtr(dr), rows, cols, 1e-5f, threads);
        _gpu.Synchronize();
        float[] y = Download(dy, rows * cols), inv = Download(dr, rows);
        CudaException.ThrowIfFailed(CudaDriver.MemFree(dx));
        CudaException.ThrowIfFailed(CudaDriver.MemFree(dw));
        Assert.That(y, Is.EqualTo(yt.HostSpan<float>().ToArray()).Within(2e-6f * 4), "y");
        Assert.That(inv, Is.EqualTo(rt.HostSpan<float>().ToArray()).Within(1e-5f), "inv_rms");
    }
}
