using System.Globalization;
using CudaFinetune.Backends;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Verification;

/// <summary>
/// kernels/elementwise.cu and kernels/swiglu.cu against the CPU backend's Copy, Fill, Add, AddScaled,
/// Dropout and SwiGLU, for fp32 and bf16 tensors, at sizes that are not multiples of a block.
/// bf16 cases feed the reference the bf16-rounded inputs and allow 1e-2 relative. The arrays start on a 16-byte boundary,
/// a few elements past one (the kernels' vectorised loops then begin with single elements), or at different offsets from
/// each other (single elements throughout).
/// </summary>
internal static class ElementwiseChecks
{
    /// <summary>(n, offset, skew): n not a multiple of a block; the first array <c>offset</c> elements past a 16-byte boundary, the others <c>skew</c> further.</summary>
    private static readonly (int N, int Offset, int Skew)[] Sizes = [(1, 0, 0), (1000, 0, 0), (70_001, 0, 0), (1000, 3, 0), (1003, 0, 1)];
    private static readonly DType[] Types = [DType.F32, DType.BF16];

    public static IReadOnlyList<KernelCheck> All { get; } =
    [
        new("cast", "elementwise", Casts),
        new("fill", "elementwise", Fills),
        new("add", "elementwise", Adds),
        new("add_scaled", "elementwise", AddScaleds),
        new("dropout", "elementwise", Dropouts),
        new("swiglu_forward", "swiglu", SwiGluForwards),
        new("swiglu_backward", "swiglu", SwiGluBackwards),
    ];

    private static string Suffix(DType dtype) => dtype == DType.BF16 ? "bf16" : "f32";

    private static string Case(DType dtype, (int N, int Offset, int Skew) size) => string.Create(CultureInfo.InvariantCulture,
        $"{Suffix(dtype)}, n={size.N}{(size.Offset != 0 ? $", offset {size.Offset}" : "")}{(size.Skew != 0 ? $", skew {size.Skew}" : "")}");

    /// <summary>The arrays of one case, placed as its size says: the first <c>offset</c> elements into its buffer, every later one <c>offset + skew</c>.</summary>
    private sealed class Arrays(CheckRun run, DType dtype, (int N, int Offset, int Skew) size)
    {
        private int _placed;

        private int Shift() => _placed++ == 0 ? size.Offset : size.Offset + size.Skew;

        public DevicePtr Put(float[] values)
        {
            int shift = Shift();
            return run.PutAs([.. new float[shift], .. values], dtype).Offset((long)shift * dtype.SizeInBytes());
        }

        public DevicePtr Poisoned()
        {
            int shift = Shift();
            return run.PoisonedAs(size.N + shift, dtype).Offset((long)shift * dtype.SizeInBytes());
        }
    }

    private static float[] Uniform(Random random, int n, double low, double high)
        => [.. Enumerable.Range(0, n).Select(_ => (float)(low + random.NextDouble() * (high - low)))];

    /// <summary>Runs <paramref name="body"/> for every dtype and size, collecting its results.</summary>
    private static List<KernelCheckResult> Each(Func<DType, (int N, int Offset, int Skew), IEnumerable<KernelCheckResult>> body)
        => [.. from dtype in Types from size in Sizes from result in body(dtype, size) select result];

    /// <summary>fp32 → bf16 rounds to nearest even (exactly as HalfPrecision), bf16 → fp32 is exact.</summary>
    private static List<KernelCheckResult> Casts(IDevice device, Random random)
        => [.. from size in Sizes from result in Cast(device, random, size) select result];

    private static IEnumerable<KernelCheckResult> Cast(IDevice device, Random random, (int N, int Offset, int Skew) size)
    {
        int n = size.N, shift = size.Offset + size.Skew;
        float[] x = Uniform(random, n, -300, 300);
        using var run = new CheckRun(device);
        DevicePtr f32 = run.Put<float>([.. new float[size.Offset], .. x]).Offset(size.Offset * sizeof(float));
        DevicePtr bf16 = run.Poisoned<ushort>(n + shift).Offset(shift * sizeof(ushort)), back = run.Poisoned<float>(n + size.Offset).Offset(size.Offset * sizeof(float));
        run.StartClock();
        ElementwiseKernels.CastF32ToBF16(device, f32, bf16, n);
        ElementwiseKernels.CastBF16ToF32(device, bf16, back, n);
        var elapsed = run.StopClock();
        float[] rounded = CheckRun.Stored(x, DType.BF16);
        yield return KernelComparison.Compare("cast_f32_bf16 + cast_bf16_f32", Case(DType.BF16, size), run.Get<float>(back, n), rounded, 0, elapsed);
    }

    private static List<KernelCheckResult> Fills(IDevice device, Random random) => Each((dtype, size) =>
    {
        int n = size.N;
        float value = (float)(random.NextDouble() * 10 - 5);
        using var run = new CheckRun(device);
        var x = new Arrays(run, dtype, size).Poisoned();
        run.StartClock();
        ElementwiseKernels.Fill(device, dtype, x, value, n);
        var elapsed = run.StopClock();
        return [KernelComparison.Compare($"fill_{Suffix(dtype)}", Case(dtype, size), run.GetAs(x, n, dtype), CheckRun.Stored(Enumerable.Repeat(value, n).ToArray(), dtype), 0, elapsed)];
    });

    private static List<KernelCheckResult> Adds(IDevice device, Random random) => Each((dtype, size) =>
    {
        int n = size.N;
        float[] a = CheckRun.Stored(Uniform(random, n, -2, 2), dtype), b = CheckRun.Stored(Uniform(random, n, -2, 2), dtype);
        using var reference = new CpuReference();
        var output = reference.F32(new float[n]);
        reference.Backend.Add(reference.F32(a), reference.F32(b), output);
        using var run = new CheckRun(device);
        var arrays = new Arrays(run, dtype, size);
        DevicePtr pa = arrays.Put(a), pb = arrays.Put(b);
        run.StartClock();
        ElementwiseKernels.Add(device, dtype, pa, pb, pa, n);
        var elapsed = run.StopClock();
        return [KernelComparison.Compare($"add_{Suffix(dtype)} (in place)", Case(dtype, size), run.GetAs(pa, n, dtype), CpuReference.Values(output), CheckRun.Tolerance(dtype), elapsed)];
    });

    private static List<KernelCheckResult> AddScaleds(IDevice device, Random random) => Each((dtype, size) =>
    {
        int n = size.N;
        float[] x = CheckRun.Stored(Uniform(random, n, -2, 2), dtype), acc = CheckRun.Stored(Uniform(random, n, -2, 2), dtype);
        float scale = (float)(random.NextDouble() * 4 - 2);
        using var reference = new CpuReference();
        var accumulator = reference.F32(acc);
        reference.Backend.AddScaled(reference.F32(x), scale, accumulator);
        using var run = new CheckRun(device);
        var arrays = new Arrays(run, dtype, size);
        DevicePtr pacc = arrays.Put(acc), px = arrays.Put(x);
        run.StartClock();
        ElementwiseKernels.AddScaled(device, dtype, px, scale, pacc, n);
        var elapsed = run.StopClock();
        return [KernelComparison.Compare($"add_scaled_{Suffix(dtype)}", Case(dtype, size), run.GetAs(pacc, n, dtype), CpuReference.Values(accumulator), CheckRun.Tolerance(dtype), elapsed)];
    });

    /// <summary>The mask must be the CPU backend's, element for element: a dropped or kept element in the wrong place is off by |x|/(1−p).</summary>
    private static List<KernelCheckResult> Dropouts(IDevice device, Random random) => Each((dtype, size) =>
    {
        int n = size.N;
        float[] x = CheckRun.Stored(Uniform(random, n, 0.5, 2), dtype);
        double p = 0.1 + random.NextDouble() * 0.5;
        var key = new DropoutKey((ulong)random.NextInt64(), random.Next(1, 1000), random.Next(32), random.Next(4));
        var (hi0, hi1) = key.CounterWords();
        using var reference = new CpuReference();
        var output = reference.F32(new float[n]);
        reference.Backend.Dropout(reference.F32(x), output, p, key);
        using var run = new CheckRun(device);
        var arrays = new Arrays(run, dtype, size);
        DevicePtr pout = arrays.Poisoned(), px = arrays.Put(x);
        uint threshold = DropoutKey.KeepThreshold(p);
        float scale = (float)(1.0 / (1.0 - p));
        run.StartClock();
        ElementwiseKernels.Dropout(device, dtype, px, pout, n, key.Seed, hi0, hi1, threshold, scale);
        var elapsed = run.StopClock();
        return [KernelComparison.Compare($"dropout_{Suffix(dtype)}", Case(dtype, size) + string.Create(CultureInfo.InvariantCulture, $", p={p:F2}"),
            run.GetAs(pout, n, dtype), CheckRun.Stored(CpuReference.Values(output), dtype), CheckRun.Tolerance(dtype), elapsed)];
    });

    private static List<KernelCheckResult> SwiGluForwards(IDevice device, Random random) => Each((dtype, size) =>
    {
        int n = size.N;
        float[] gate = CheckRun.Stored(Uniform(random, n, -8, 8), dtype), up = CheckRun.Stored(Uniform(random, n, -2, 2), dtype);
        using var reference = new CpuReference();
        var output = reference.F32(new float[n]);
        reference.Backend.SwiGluForward(reference.F32(gate), reference.F32(up), output);
        using var run = new CheckRun(device);
        var arrays = new Arrays(run, dtype, size);
        DevicePtr pout = arrays.Poisoned(), pg = arrays.Put(gate), pu = arrays.Put(up);
        run.StartClock();
        SwiGluKernels.Forward(device, dtype, pg, pu, pout, n);
        var elapsed = run.StopClock();
        return [KernelComparison.Compare($"swiglu_forward_{Suffix(dtype)}", Case(dtype, size), run.GetAs(pout, n, dtype), CpuReference.Values(output), CheckRun.Tolerance(dtype), elapsed)];
    });

    private static List<KernelCheckResult> SwiGluBackwards(IDevice device, Random random) => Each((dtype, size) =>
    {
        int n = size.N;
        float[] gate = CheckRun.Stored(Uniform(random, n, -8, 8), dtype), up = CheckRun.Stored(Uniform(random, n, -2, 2), dtype);
        float[] dOut = CheckRun.Stored(Uniform(random, n, -1, 1), dtype);
        using var reference = new CpuReference();
        Tensor dGate = reference.F32(new float[n]), dUp = reference.F32(new float[n]);
        reference.Backend.SwiGluBackward(reference.F32(dOut), reference.F32(gate), reference.F32(up), dGate, dUp);
        using var run = new CheckRun(device);
        var arrays = new Arrays(run, dtype, size);
        DevicePtr pdg = arrays.Poisoned(), pd = arrays.Put(dOut), pg = arrays.Put(gate), pu = arrays.Put(up), pdu = arrays.Poisoned();
        run.StartClock();
        SwiGluKernels.Backward(device, dtype, pd, pg, pu, pdg, pdu, n);
        var elapsed = run.StopClock();
        return [
            KernelComparison.Compare($"swiglu_backward_{Suffix(dtype)} dgate", Case(dtype, size), run.GetAs(pdg, n, dtype), CpuReference.Values(dGate), CheckRun.Tolerance(dtype), elapsed),
            KernelComparison.Compare($"swiglu_backward_{Suffix(dtype)} dup", Case(dtype, size), run.GetAs(pdu, n, dtype), CpuReference.Values(dUp), CheckRun.Tolerance(dtype), elapsed),
        ];
    });
}
