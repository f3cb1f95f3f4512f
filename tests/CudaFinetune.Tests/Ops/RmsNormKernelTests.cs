using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Ops;

/// <summary>kernels/rmsnorm.cu on the emulator and on a GPU, against the CPU backend, outputs poisoned first.</summary>
[TestFixture(KernelDevice.Emulator)]
[TestFixture(KernelDevice.Gpu)]
public sealed class RmsNormKernelTests(KernelDevice kind)
{
    private readonly List<DeviceBuffer> _buffers = [];
    private IDevice _device = null!;

    [OneTimeSetUp]
    public void Open() => _device = TestDevices.Open(kind);

    [OneTimeTearDown]
    public void Close() => _device?.Dispose();

    [TearDown]
    public void Free() => _device.FreeAll(_buffers);

    [TestCase(1, 32, 32)]
    [TestCase(7, 300, 128)]
    [TestCase(3, 1000, 1024)]
    [TestCase(2, 5, 64)]
    [TestCase(5, 4096, 1024)]
    public void Forward_matches_the_cpu_backend(int rows, int cols, int threads)
    {
        var reference = RmsNormCase.Create(rows, cols);
        var y = _device.Poisoned<float>(_buffers, rows * cols);
        var inv = _device.Poisoned<float>(_buffers, rows);
        RmsNormKernels.ForwardF32(_device, _device.Put<float>(_buffers, reference.X), _device.Put<float>(_buffers, reference.Weight), y, inv,
            rows, cols, RmsNormCase.Epsilon, threads);
        Assert.That(_device.Download<float>(y, rows * cols), Is.EqualTo(reference.Y).Within(1e-5f), "y");
        Assert.That(_device.Download<float>(inv, rows), Is.EqualTo(reference.InvRms).Within(1e-5f), "inv_rms");
    }

    [TestCase(1, 32, 32)]
    [TestCase(7, 300, 128)]
    [TestCase(4, 77, 64)]
    public void Backward_matches_the_cpu_backend_and_accumulates(int rows, int cols, int threads)
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

        DevicePtr pdy = _device.Put<float>(_buffers, dy), px = _device.Put<float>(_buffers, x), pw = _device.Put<float>(_buffers, w);
        DevicePtr pr = _device.Put<float>(_buffers, rt.HostSpan<float>()), pdx = _device.Put<float>(_buffers, dxStart), pdw = _device.Put<float>(_buffers, dwStart);
        RmsNormKernels.BackwardDxF32(_device, pdy, px, pw, pr, pdx, rows, cols, threads);
        RmsNormKernels.BackwardDWeightF32(_device, pdy, px, pr, pdw, rows, cols, threads);
        Assert.That(_device.Download<float>(pdx, rows * cols), Is.EqualTo(dxt.HostSpan<float>().ToArray()).Within(1e-5f), "dx (accumulated onto its start values)");
        Assert.That(_device.Download<float>(pdw, cols), Is.EqualTo(dwt.HostSpan<float>().ToArray()).Within(1e-5f), "dweight (accumulated onto its start values)");
    }
}
