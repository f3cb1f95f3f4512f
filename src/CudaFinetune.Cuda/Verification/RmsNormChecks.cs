using System.Globalization;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Verification;

/// <summary>kernels/rmsnorm.cu against the CPU backend's RmsNormForward/RmsNormBackward on fresh random inputs (fp32: 1e-5 relative).</summary>
internal static class RmsNormChecks
{
    private const double Tolerance = 1e-5;
    private const float Epsilon = 1e-5f;

    /// <summary>(rows, cols, threads): a warp, odd widths, rows shorter than the block, and a Llama-sized row.</summary>
    private static readonly (int Rows, int Cols, int Threads)[] Cases = [(1, 32, 32), (7, 300, 128), (2, 5, 64), (3, 1000, 1024), (5, 4096, 256)];

    public static IReadOnlyList<KernelCheck> All { get; } =
    [
        new("rmsnorm_forward_f32", "rmsnorm", Forward),
        new("rmsnorm_backward_f32", "rmsnorm", Backward),
    ];

    private static string Name(int rows, int cols, int threads) => string.Create(CultureInfo.InvariantCulture, $"{rows}x{cols}, {threads} threads");

    private static float[] Uniform(Random random, int count, double low, double high)
        => [.. Enumerable.Range(0, count).Select(_ => (float)(low + random.NextDouble() * (high - low)))];

    private static List<KernelCheckResult> Forward(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        using var cpu = new CpuBackend(threads: 1);
        foreach (var (rows, cols, threads) in Cases)
        {
            float[] x = Uniform(random, rows * cols, -2, 2), w = Uniform(random, cols, 0.5, 1.5);
            using var xt = Tensor(cpu, x, rows, cols);
            using var wt = Tensor(cpu, w, cols);
            using var yt = cpu.Allocate(DType.F32, new Shape(rows, cols));
            using var rt = cpu.Allocate(DType.F32, new Shape(rows));
            cpu.RmsNormForward(xt, wt, Epsilon, yt, rt);

            using var run = new CheckRun(device);
            DevicePtr px = run.Put<float>(x), pw = run.Put<float>(w), py = run.Poisoned<float>(rows * cols), pr = run.Poisoned<float>(rows);
            run.StartClock();
            RmsNormKernels.ForwardF32(device, px, pw, py, pr, rows, cols, Epsilon, threads);
            var elapsed = run.StopClock();
            string name = Name(rows, cols, threads);
            results.Add(KernelComparison.Compare("rmsnorm_forward_f32 y", name, run.Get<float>(py, rows * cols), yt.HostSpan<float>(), Tolerance, elapsed,
                i => $"y[{i / cols},{i % cols}]"));
            results.Add(KernelComparison.Compare("rmsnorm_forward_f32 inv_rms", name, run.Get<float>(pr, rows), rt.HostSpan<float>(), Tolerance, elapsed,
                i => $"inv_rms[{i}]"));
        }
        return results;
    }

    /// <summary>dx and dweight accumulate onto random start values, as the backward pass does.</summary>
    private static List<KernelCheckResult> Backward(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        using var cpu = new CpuBackend(threads: 1);
        foreach (var (rows, cols, threads) in Cases)
        {
            float[] x = Uniform(random, rows * cols, -2, 2), w = Uniform(random, cols, 0.5, 1.5), dy = Uniform(random, rows * cols, -1, 1);
            float[] dxStart = Uniform(random, rows * cols, -0.5, 0.5), dwStart = Uniform(random, cols, -0.5, 0.5);
            using var xt = Tensor(cpu, x, rows, cols);
            using var wt = Tensor(cpu, w, cols);
            using var dyt = Tensor(cpu, dy, rows, cols);
            using var yt = cpu.Allocate(DType.F32, new Shape(rows, cols));
            using var rt = cpu.Allocate(DType.F32, new Shape(rows));
            using var dxt = Tensor(cpu, dxStart, rows, cols);
            using var dwt = Tensor(cpu, dwStart, cols);
            cpu.RmsNormForward(xt, wt, Epsilon, yt, rt);
            cpu.RmsNormBackward(dyt, xt, wt, rt, dxt, dwt);

            using var run = new CheckRun(device);
            DevicePtr pdy = run.Put<float>(dy), px = run.Put<float>(x), pw = run.Put<float>(w), pr = run.Put<float>(rt.HostSpan<float>());
            DevicePtr pdx = run.Put<float>(dxStart), pdw = run.Put<float>(dwStart);
            run.StartClock();
            RmsNormKernels.BackwardDxF32(device, pdy, px, pw, pr, pdx, rows, cols, threads);
            RmsNormKernels.BackwardDWeightF32(device, pdy, px, pr, pdw, rows, cols, threads);
            var elapsed = run.StopClock();
            string name = Name(rows, cols, threads);
            results.Add(KernelComparison.Compare("rmsnorm_backward_dx_f32", name, run.Get<float>(pdx, rows * cols), dxt.HostSpan<float>(), Tolerance, elapsed,
                i => $"dx[{i / cols},{i % cols}]"));
            results.Add(KernelComparison.Compare("rmsnorm_backward_dweight_f32", name, run.Get<float>(pdw, cols), dwt.HostSpan<float>(), Tolerance, elapsed,
                i => $"dweight[{i}]"));
        }
        return results;
    }

    private static Tensor Tensor(CpuBackend cpu, float[] values, params int[] shape)
    {
        var tensor = cpu.Allocate(DType.F32, new Shape(shape));
        cpu.CopyFromHost<float>(values, tensor);
        return tensor;
    }
}
