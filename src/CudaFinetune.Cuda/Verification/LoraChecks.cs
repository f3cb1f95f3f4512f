using System.Globalization;
using CudaFinetune.Backends;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Verification;

/// <summary>
/// kernels/lora.cu against two CPU backend MatMuls on the same bf16-rounded inputs, at sizes that are and are not
/// multiples of the 64 × 64 tiles, ranks 8 to 64; the backward adds onto a random start, without and with the adapter's
/// dropout (the CPU backend's mask, regenerated in the kernel). 1e-2 relative (bf16 output).
/// </summary>
internal static class LoraChecks
{
    /// <summary>(tokens, n = out features, k = in features, r).</summary>
    private static readonly (int Tokens, int N, int K, int R)[] Shapes = [(1, 8, 8, 8), (37, 72, 136, 16), (130, 64, 200, 8), (64, 128, 64, 64)];

    public static IReadOnlyList<KernelCheck> All { get; } =
    [
        new("lora_forward", "lora", Forward),
        new("lora_backward_dx", "lora", BackwardDx),
    ];

    private static float[] Uniform(Random random, int n)
        => CheckRun.Stored([.. Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1))], DType.BF16);

    private static string Name(int tokens, int n, int k, int r) => string.Create(CultureInfo.InvariantCulture, $"T{tokens} n{n} k{k} r{r}");

    private static List<KernelCheckResult> Forward(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var (tokens, n, k, r) in Shapes)
        {
            float[] x = Uniform(random, tokens * k), w = Uniform(random, n * k), low = Uniform(random, tokens * r), b = Uniform(random, n * r);
            using var reference = new CpuReference();
            var y = reference.F32(new float[tokens * n], tokens, n);
            reference.Backend.MatMul(reference.F32(x, tokens, k), false, reference.F32(w, n, k), true, y);
            reference.Backend.MatMul(reference.F32(low, tokens, r), false, reference.F32(b, n, r), true, y, beta: 1);

            using var run = new CheckRun(device);
            DevicePtr px = run.PutAs(x, DType.BF16), pw = run.PutAs(w, DType.BF16), plow = run.PutAs(low, DType.BF16), pb = run.PutAs(b, DType.BF16);
            DevicePtr py = run.PoisonedAs(tokens * n, DType.BF16);
            run.StartClock();
            LoraKernels.ForwardBF16(device, px, pw, plow, pb, py, tokens, n, k, r);
            var elapsed = run.StopClock();
            results.Add(KernelComparison.Compare("lora_forward_bf16", Name(tokens, n, k, r), run.GetAs(py, tokens * n, DType.BF16), CpuReference.Values(y), 1e-2, elapsed,
                i => $"y[{i / n},{i % n}]"));
        }
        return results;
    }

    private static List<KernelCheckResult> BackwardDx(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var ((tokens, n, k, r), p) in Shapes.SelectMany(s => new[] { (s, 0.0), (s, 0.3) }))
        {
            var key = new DropoutKey((ulong)random.NextInt64(), random.Next(1, 1000), random.Next(32), random.Next(7));
            float[] dy = Uniform(random, tokens * n), w = Uniform(random, n * k), dlow = Uniform(random, tokens * r), a = Uniform(random, r * k);
            float[] start = Uniform(random, tokens * k);
            using var reference = new CpuReference();
            var dx = reference.F32(start, tokens, k);
            reference.Backend.MatMul(reference.F32(dy, tokens, n), false, reference.F32(w, n, k), false, dx, beta: 1);
            var adapter = reference.F32(new float[tokens * k], tokens, k);
            reference.Backend.MatMul(reference.F32(dlow, tokens, r), false, reference.F32(a, r, k), false, adapter);
            if (p > 0)
            {
                reference.Backend.Dropout(adapter, adapter, p, key);
            }
            reference.Backend.AddScaled(adapter, 1, dx);

            using var run = new CheckRun(device);
            DevicePtr pdy = run.PutAs(dy, DType.BF16), pw = run.PutAs(w, DType.BF16), pdlow = run.PutAs(dlow, DType.BF16), pa = run.PutAs(a, DType.BF16);
            DevicePtr pdx = run.PutAs(start, DType.BF16);
            run.StartClock();
            var (hi0, hi1) = key.CounterWords();
            LoraKernels.BackwardDxBF16(device, pdy, pw, pdlow, pa, pdx, tokens, n, k, r, accumulate: 1, key.Seed, hi0, hi1, DropoutKey.KeepThreshold(p), (float)(1 / (1 - p)));
            var elapsed = run.StopClock();
            results.Add(KernelComparison.Compare("lora_backward_dx_bf16", Name(tokens, n, k, r) + string.Create(CultureInfo.InvariantCulture, $" dropout {p}"), run.GetAs(pdx, tokens * k, DType.BF16), CpuReference.Values(dx), 1e-2, elapsed,
                i => $"dx[{i / k},{i % k}]"));
        }
        return results;
    }
}
