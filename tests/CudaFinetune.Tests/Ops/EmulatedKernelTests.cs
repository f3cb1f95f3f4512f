using System.Runtime.InteropServices;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Ops;

/// <summary>Our kernels run by the emulator (the same kernels/*.cu as host code), against the CPU backend, on any machine.</summary>
[TestFixture]
public sealed unsafe class EmulatedKernelTests
{
    private EmulatedDevice _emulator = null!;

    [OneTimeSetUp]
    public void Open() => _emulator = EmulatedDevice.Open();

    [OneTimeTearDown]
    public void Close() => _emulator.Dispose();

    [TestCase(1, 32, 32)]
    [TestCase(7, 300, 128)]
    [TestCase(3, 1000, 1024)]
    [TestCase(2, 5, 64)]
    public void RmsNorm_forward_matches_the_cpu_backend(int rows, int cols, int threads)
    {
        var reference = RmsNormCase.Create(rows, cols);
        float[] x = reference.X, w = reference.Weight;
        var y = new float[rows * cols];
        var inv = new float[rows];
        Array.Fill(y, float.NaN); // poisoned: every element must be written
        Array.Fill(inv, float.NaN);
        fixed (float* px = x, pw = w, py = y, pr = inv)
        {
            RmsNormKernels.ForwardF32(_emulator, Ptr(px), Ptr(pw), Ptr(py), Ptr(pr), rows, cols, RmsNormCase.Epsilon, threads);
        }
        Assert.That(y, Is.EqualTo(reference.Y).Within(1e-5f), "y");
        Assert.That(inv, Is.EqualTo(reference.InvRms).Within(1e-5f), "inv_rms");
    }

    [TestCase(1, 32, 32)]
    [TestCase(7, 300, 128)]
    [TestCase(4, 77, 64)]
    public void RmsNorm_backward_matches_the_cpu_backend_and_accumulates(int rows, int cols, int threads)
    {
        var rng = new Random(rows * 17 + cols);
        float[] Random(int n, double scale, double shift) => [.. Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * scale + shift))];
        float[] x = Random(rows * cols, 4, -2), w = Random(cols, 1, 0.5), dy = Random(rows * cols, 2, -1);
        float[] dxStart = Random(rows * cols, 1, -0.5), dwStart = Random(cols, 1, -0.5);
        using var cpu = new CpuBackend(threads: 1);
        Tensor T(float[] values, params int[] shape)
        {
            var t = cpu.Allocate(DType.F32, new Shape(shape));
            cpu.CopyFromHost<float>(values, t);
            return t;
        }
        using var xt = T(x, rows, cols);
        using var wt = T(w, cols);
        using var dyt = T(dy, rows, cols);
        using var yt = cpu.Allocate(DType.F32, new Shape(rows, cols));
        using var rt = cpu.Allocate(DType.F32, new Shape(rows));
        using var dxt = T(dxStart, rows, cols);
        using var dwt = T(dwStart, cols);
        cpu.RmsNormForward(xt, wt, 1e-5, yt, rt);
        cpu.RmsNormBackward(dyt, xt, wt, rt, dxt, dwt);

        float[] inv = rt.HostSpan<float>().ToArray();
        float[] dx = (float[])dxStart.Clone(), dw = (float[])dwStart.Clone();
        fixed (float* pdy = dy, px = x, pw = w, pr = inv, pdx = dx, pdw = dw)
        {
            RmsNormKernels.BackwardDxF32(_emulator, Ptr(pdy), Ptr(px), Ptr(pw), Ptr(pr), Ptr(pdx), rows, cols, threads);
            RmsNormKernels.BackwardDWeightF32(_emulator, Ptr(pdy), Ptr(px), Ptr(pr), Ptr(pdw), rows, cols, threads);
        }
        Assert.That(dx, Is.EqualTo(dxt.HostSpan<float>().ToArray()).Within(1e-5f), "dx (accumulated onto its start values)");
        Assert.That(dw, Is.EqualTo(dwt.HostSpan<float>().ToArray()).Within(1e-5f), "dweight (accumulated onto its start values)");
    }

    private static DevicePtr Ptr(float* p) => new((ulong)p);
}
