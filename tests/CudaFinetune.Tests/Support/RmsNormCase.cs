using CudaFinetune.Backends.Cpu;
using CudaFinetune.Tensors;

namespace CudaFinetune.Tests.Support;

/// <summary>Random RMSNorm inputs of a shape and the CPU backend's forward result: the reference the kernel tests compare with.</summary>
internal sealed record RmsNormCase(float[] X, float[] Weight, float[] Y, float[] InvRms)
{
    public const float Epsilon = 1e-5f;

    public static RmsNormCase Create(int rows, int cols)
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
        cpu.RmsNormForward(xt, wt, Epsilon, yt, rt);
        return new RmsNormCase(x, w, yt.HostSpan<float>().ToArray(), rt.HostSpan<float>().ToArray());
    }
}
