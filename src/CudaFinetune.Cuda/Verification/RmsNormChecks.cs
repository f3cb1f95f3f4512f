using System.Globalization;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Verification;

/// <summary>
/// kernels/rmsnorm.cu against the CPU backend's RmsNormForward/RmsNormBackward on fresh random inputs, fp32 and bf16 (the
/// reference gets the bf16-rounded inputs): y and dx 1e-5 relative in fp32, 1e-2 in bf16; inv_rms and dweight (fp32 in both) 1e-5.
/// </summary>
internal static class RmsNormChecks
{
    private const double Tolerance = 1e-5;
    private const float Epsilon = 1e-5f;

    /// <summary>
    /// (rows, cols, threads): a warp, odd widths, rows shorter than the block, a Llama-sized row, and enough rows for several
    /// slices of the weight gradient's first stage (16 rows each here), with rows whose width keeps 16-byte alignment or not.
    /// </summary>
    private static readonly (int Rows, int Cols, int Threads)[] Cases = [(1, 32, 32), (7, 300, 128), (2, 5, 64), (3, 1000, 1024), (5, 4096, 256), (300, 72, 64), (41, 300, 32)];

    public static IReadOnlyList<KernelCheck> All { get; } =
    [
        new("rmsnorm_forward_f32", "rmsnorm", (device, random) => Forward(device, random, DType.F32)),
        new("rmsnorm_backward_f32", "rmsnorm", (device, random) => Backward(device, random, DType.F32)),
        new("rmsnorm_forward_bf16", "rmsnorm", (device, random) => Forward(device, random, DType.BF16)),
        new("rmsnorm_backward_bf16", "rmsnorm", (device, random) => Backward(device, random, DType.BF16)),
        new("rmsnorm_residual_forward_f32", "rmsnorm", (device, random) => ResidualForward(device, random, DType.F32)),
        new("rmsnorm_residual_forward_bf16", "rmsnorm", (device, random) => ResidualForward(device, random, DType.BF16)),
    ];

    private static string Name(int rows, int cols, int threads) => string.Create(CultureInfo.InvariantCulture, $"{rows}x{cols}, {threads} threads");

    private static string Suffix(DType dtype) => dtype == DType.BF16 ? "bf16" : "f32";

    private static float[] Uniform(Random random, int count, double low, double high, DType dtype)
        => CheckRun.Stored([.. Enumerable.Range(0, count).Select(_ => (float)(low + random.NextDouble() * (high - low)))], dtype);

    private static List<KernelCheckResult> Forward(IDevice device, Random random, DType dtype)
    {
        var results = new List<KernelCheckResult>();
        using var cpu = new CpuBackend(threads: 1);
        string kernel = $"rmsnorm_forward_{Suffix(dtype)}";
        foreach (var (rows, cols, threads) in Cases)
        {
            float[] x = Uniform(random, rows * cols, -2, 2, dtype), w = Uniform(random, cols, 0.5, 1.5, dtype);
            using var xt = Tensor(cpu, x, rows, cols);
            using var wt = Tensor(cpu, w, cols);
            using var yt = cpu.Allocate(DType.F32, new Shape(rows, cols));
            using var rt = cpu.Allocate(DType.F32, new Shape(rows));
            cpu.RmsNormForward(xt, wt, Epsilon, yt, rt);

            using var run = new CheckRun(device);
            DevicePtr px = run.PutAs(x, dtype), pw = run.PutAs(w, dtype), py = run.PoisonedAs(rows * cols, dtype), pr = run.Poisoned<float>(rows);
            run.StartClock();
            RmsNormKernels.Forward(device, dtype, px, pw, py, pr, rows, cols, Epsilon, threads);
            var elapsed = run.StopClock();
            string name = Name(rows, cols, threads);
            results.Add(KernelComparison.Compare($"{kernel} y", name, run.GetAs(py, rows * cols, dtype), yt.HostSpan<float>(), CheckRun.Tolerance(dtype), elapsed,
                i => $"y[{i / cols},{i % cols}]"));
            results.Add(KernelComparison.Compare($"{kernel} inv_rms", name, run.Get<float>(pr, rows), rt.HostSpan<float>(), Tolerance, elapsed,
                i => $"inv_rms[{i}]"));
        }
        return results;
    }

    /// <summary>The residual form: sum = x + delta is stored (rounded to the dtype) and normalised as stored.</summary>
    private static List<KernelCheckResult> ResidualForward(IDevice device, Random random, DType dtype)
    {
        var results = new List<KernelCheckResult>();
        using var cpu = new CpuBackend(threads: 1);
        string kernel = $"rmsnorm_residual_forward_{Suffix(dtype)}";
        foreach (var (rows, cols, threads) in Cases)
        {
            float[] x = Uniform(random, rows * cols, -2, 2, dtype), delta = Uniform(random, rows * cols, -1, 1, dtype), w = Uniform(random, cols, 0.5, 1.5, dtype);
            float[] sum = CheckRun.Stored([.. x.Zip(delta, (a, b) => a + b)], dtype);
            using var st = Tensor(cpu, sum, rows, cols);
            using var wt = Tensor(cpu, w, cols);
            using var yt = cpu.Allocate(DType.F32, new Shape(rows, cols));
            using var rt = cpu.Allocate(DType.F32, new Shape(rows));
            cpu.RmsNormForward(st, wt, Epsilon, yt, rt);

            using var run = new CheckRun(device);
            DevicePtr px = run.PutAs(x, dtype), pd = run.PutAs(delta, dtype), pw = run.PutAs(w, dtype);
            DevicePtr ps = run.PoisonedAs(rows * cols, dtype), py = run.PoisonedAs(rows * cols, dtype), pr = run.Poisoned<float>(rows);
            run.StartClock();
            RmsNormKernels.ResidualForward(device, dtype, px, pd, ps, pw, py, pr, rows, cols, Epsilon, threads);
            var elapsed = run.StopClock();
            string name = Name(rows, cols, threads);
            results.Add(KernelComparison.Compare($"{kernel} sum", name, run.GetAs(ps, rows * cols, dtype), sum, 0, elapsed, i => $"sum[{i / cols},{i % cols}]"));
            results.Add(KernelComparison.Compare($"{kernel} y", name, run.GetAs(py, rows * cols, dtype), yt.HostSpan<float>(), CheckRun.Tolerance(dtype), elapsed,
                i => $"y[{i / cols},{i % cols}]"));
            results.Add(KernelComparison.Compare($"{kernel} inv_rms", name, run.Get<float>(pr, rows), rt.HostSpan<float>(), Tolerance, elapsed, i => $"inv_rms[{i}]"));
        }
        return results;
    }

    /// <summary>dx and dweight accumulate onto random start values, as the backward pass does.</summary>
    private static List<KernelCheckResult> Backward(IDevice device, Random random, DType dtype)
    {
        var results = new List<KernelCheckResult>();
        using var cpu = new CpuBackend(threads: 1);
        string suffix = Suffix(dtype);
        foreach (var (rows, cols, threads) in Cases)
        {
            float[] x = Uniform(random, rows * cols, -2, 2, dtype), w = Uniform(random, cols, 0.5, 1.5, dtype), dy = Uniform(random, rows * cols, -1, 1, dtype);
            float[] dxStart = Uniform(random, rows * cols, -0.5, 0.5, dtype), dwStart = Uniform(random, cols, -0.5, 0.5, DType.F32);
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
            DevicePtr pdy = run.PutAs(dy, dtype), px = run.PutAs(x, dtype), pw = run.PutAs(w, dtype), pr = run.Put<float>(rt.HostSpan<float>());
            DevicePtr pdx = run.PutAs(dxStart, dtype), pdw = run.Put<float>(dwStart);
            run.StartClock();
            RmsNormKernels.BackwardDx(device, dtype, pdy, px, pw, pr, pdx, rows, cols, threads);
            RmsNormKernels.BackwardDWeight(device, dtype, pdy, px, pr, pdw, rows, cols, threads);
            var elapsed = run.StopClock();
            string name = Name(rows, cols, threads);
            results.Add(KernelComparison.Compare($"rmsnorm_backward_dx_{suffix}", name, run.GetAs(pdx, rows * cols, dtype), dxt.HostSpan<float>(), CheckRun.Tolerance(dtype), elapsed,
                i => $"dx[{i / cols},{i % cols}]"));
            results.Add(KernelComparison.Compare($"rmsnorm_backward_dweight_{suffix}", name, run.Get<float>(pdw, cols), dwt.HostSpan<float>(), Tolerance, elapsed,
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
