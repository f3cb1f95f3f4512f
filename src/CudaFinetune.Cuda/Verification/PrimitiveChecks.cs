using System.Globalization;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Numerics;

namespace CudaFinetune.Cuda.Verification;

/// <summary>
/// The device primitives of kernels/common.cuh, through native/cuemu/selftest.cu, against scalar
/// references written from the CUDA and PTX ISA documentation: shuffles, votes, barriers, shared
/// memory, atomics, cp.async, ldmatrix and mma.m16n8k16 fragments. On the emulator they check the
/// emulator; on a GPU, that the emulator's model matches the hardware.
/// </summary>
internal static class PrimitiveChecks
{
    public static IReadOnlyList<KernelCheck> All { get; } =
    [
        new("selftest_shuffle", "primitives", Shuffles),
        new("selftest_vote", "primitives", Votes),
        new("selftest_barrier", "primitives", Barriers),
        new("selftest_dynamic_shared", "primitives", DynamicShared),
        new("selftest_block_sum", "primitives", BlockSums),
        new("selftest_atomics", "primitives", Atomics),
        new("selftest_ldmatrix", "primitives", LdMatrix),
        new("selftest_mma", "primitives", (device, random) => Mma(device, random, throughLdMatrix: false)),
        new("selftest_mma_ldmatrix", "primitives", (device, random) => Mma(device, random, throughLdMatrix: true)),
        new("selftest_contraction", "primitives", Contraction),
    ];

    private static string Text(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static List<KernelCheckResult> Shuffles(IDevice device, Random random)
    {
        const int threads = 128;
        var results = new List<KernelCheckResult>();
        foreach (var (kind, parameter) in new[] { (ShuffleKind.Xor, 1), (ShuffleKind.Xor, 16), (ShuffleKind.Xor, 31), (ShuffleKind.Index, 0),
            (ShuffleKind.Index, random.Next(32)), (ShuffleKind.Down, 1), (ShuffleKind.Down, 8), (ShuffleKind.Up, 3), (ShuffleKind.Up, 16) })
        {
            using var run = new CheckRun(device);
            var output = run.Poisoned<float>(threads);
            run.StartClock();
            SelfTestKernels.Shuffle(device, output, (int)kind, parameter, threads);
            var elapsed = run.StopClock();
            float[] expected = [.. Enumerable.Range(0, threads).Select(t =>
            {
                int lane = t % 32;
                int source = kind switch
                {
                    ShuffleKind.Xor => lane ^ parameter,
                    ShuffleKind.Index => parameter,
                    ShuffleKind.Down => lane + parameter < 32 ? lane + parameter : lane, // out of range: its own value
                    _ => lane - parameter >= 0 ? lane - parameter : lane,
                };
                return (float)(t - lane + source);
            })];
            results.Add(KernelComparison.Compare("selftest_shuffle", Text($"{kind} {parameter}"), run.Get<float>(output, threads), expected, 0, elapsed,
                i => Text($"thread {i}")));
        }
        return results;
    }

    /// <summary>ballot, any and all of (t % modulus == 0), over the whole warp or each half-warp apart.</summary>
    private static List<KernelCheckResult> Votes(IDevice device, Random random)
    {
        const int threads = 64;
        var results = new List<KernelCheckResult>();
        foreach (var (modulus, split) in new[] { (1, 0), (3, 0), (64, 0), (5, 1), (16, 1), (random.Next(2, 40), random.Next(2)) })
        {
            using var run = new CheckRun(device);
            var output = run.Poisoned<uint>(3 * threads);
            run.StartClock();
            SelfTestKernels.Vote(device, output, modulus, split, threads);
            var elapsed = run.StopClock();
            var expected = new uint[3 * threads];
            for (int t = 0; t < threads; t++)
            {
                int lane = t % 32;
                uint mask = split == 0 ? 0xFFFFFFFFu : lane < 16 ? 0x0000FFFFu : 0xFFFF0000u;
                uint ballot = 0;
                for (int l = 0; l < 32; l++)
                {
                    if ((mask >> l & 1) != 0 && (t - lane + l) % modulus == 0)
                    {
                        ballot |= 1u << l;
                    }
                }
                (expected[3 * t], expected[3 * t + 1], expected[3 * t + 2]) = (ballot, ballot != 0 ? 1u : 0u, ballot == mask ? 1u : 0u);
            }
            results.Add(KernelComparison.CompareExact("selftest_vote", Text($"modulus {modulus}{(split != 0 ? ", half-warps" : "")}"),
                run.Get<uint>(output, 3 * threads), expected, elapsed, i => Text($"thread {i / 3} {(i % 3 == 0 ? "ballot" : i % 3 == 1 ? "any" : "all")}")));
        }
        return results;
    }

    private static List<KernelCheckResult> Barriers(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (var (blocks, threads) in new[] { (1, 32), (3, 256), (2, 1024), (5, 96) })
        {
            using var run = new CheckRun(device);
            var output = run.Poisoned<float>(blocks * threads);
            run.StartClock();
            SelfTestKernels.Barrier(device, output, blocks, threads);
            var elapsed = run.StopClock();
            float[] expected = [.. Enumerable.Range(0, blocks * threads).Select(i => 2.0f * ((i % threads + 1) % threads) + 1000.0f * (i / threads))];
            results.Add(KernelComparison.Compare("selftest_barrier", Text($"{blocks} block(s) of {threads}"), run.Get<float>(output, blocks * threads), expected, 0,
                elapsed, i => Text($"block {i / threads}, thread {i % threads}")));
        }
        return results;
    }

    /// <summary>1000 floats, and 80 KB: more than the 48 KiB a kernel gets without opting in.</summary>
    private static List<KernelCheckResult> DynamicShared(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (int floats in new[] { 1000, 20000 })
        {
            using var run = new CheckRun(device);
            var output = run.Poisoned<float>(floats);
            run.StartClock();
            SelfTestKernels.DynamicShared(device, output, floats);
            var elapsed = run.StopClock();
            float[] expected = [.. Enumerable.Range(0, floats).Select(i => 3.0f * (floats - 1 - i))];
            results.Add(KernelComparison.Compare("selftest_dynamic_shared", Text($"{floats * sizeof(float)} bytes"), run.Get<float>(output, floats), expected, 0,
                elapsed));
        }
        return results;
    }

    private static List<KernelCheckResult> BlockSums(IDevice device, Random random)
    {
        var results = new List<KernelCheckResult>();
        foreach (int threads in new[] { 32, 96, 1024 })
        {
            using var run = new CheckRun(device);
            var output = run.Poisoned<float>(threads);
            run.StartClock();
            SelfTestKernels.BlockSum(device, output, threads);
            var elapsed = run.StopClock();
            float[] expected = [.. Enumerable.Repeat(threads * (threads - 1) / 2.0f + 1e6f * threads, threads)];
            results.Add(KernelComparison.Compare("selftest_block_sum", Text($"{threads} threads"), run.Get<float>(output, threads), expected, 0, elapsed));
        }
        return results;
    }

    /// <summary>Every thread of a two-dimensional grid: a count, a float sum of ones (exact below 2^24), a maximum, one compare-and-swap winner.</summary>
    private static List<KernelCheckResult> Atomics(IDevice device, Random random)
    {
        int blocksX = random.Next(20, 60), blocksY = 5, threads = 64, total = blocksX * blocksY * threads;
        using var run = new CheckRun(device);
        var counters = run.Put<int>(new int[4]);
        var sum = run.Put<float>(new float[1]);
        run.StartClock();
        SelfTestKernels.Atomics(device, counters, sum, blocksX, blocksY, threads);
        var elapsed = run.StopClock();
        int[] gotCounters = run.Get<int>(counters, 4);
        uint[] got = [.. gotCounters.Select(c => (uint)c), (uint)run.Get<float>(sum, 1)[0]];
        uint[] expected = [(uint)total, (uint)total - 1, 1, 1, (uint)total];
        string[] names = ["count", "max index", "CAS winners", "CAS target", "float sum"];
        return [KernelComparison.CompareExact("selftest_atomics", Text($"{blocksX}x{blocksY} blocks of {threads}"), got, expected, elapsed, i => names[i])];
    }

    /// <summary>ldmatrix .x4 and .x4.trans of a 16×16 tile whose element (r, c) is the bf16 bit pattern 16r + c + 1, so each fragment names its source.</summary>
    private static List<KernelCheckResult> LdMatrix(IDevice device, Random random)
    {
        ushort[] tile = [.. Enumerable.Range(0, 256).Select(i => (ushort)(i + 1))];
        var results = new List<KernelCheckResult>();
        foreach (bool trans in new[] { false, true })
        {
            using var run = new CheckRun(device);
            var output = run.Poisoned<uint>(128);
            var input = run.Put<ushort>(tile);
            run.StartClock();
            SelfTestKernels.LdMatrix(device, input, output, trans ? 1 : 0);
            var elapsed = run.StopClock();
            var expected = new uint[128];
            for (int lane = 0; lane < 32; lane++)
            {
                for (int i = 0; i < 4; i++)
                {
                    // Matrix i is the quarter at rows 8(i%2), columns 8(i/2) (lanes 8i..8i+7 gave its rows). Lane l gets
                    // row l/4, columns 2(l%4) and +1 — or, transposed, rows 2(l%4) and +1 of column l/4.
                    int row0 = 8 * (i % 2), col0 = 8 * (i / 2);
                    var (r, c, r2, c2) = trans
                        ? (row0 + 2 * (lane % 4), col0 + lane / 4, row0 + 2 * (lane % 4) + 1, col0 + lane / 4)
                        : (row0 + lane / 4, col0 + 2 * (lane % 4), row0 + lane / 4, col0 + 2 * (lane % 4) + 1);
                    expected[4 * lane + i] = tile[r * 16 + c] | (uint)tile[r2 * 16 + c2] << 16;
                }
            }
            results.Add(KernelComparison.CompareExact("selftest_ldmatrix", trans ? "x4.trans" : "x4", run.Get<uint>(output, 128), expected, elapsed,
                i => Text($"lane {i / 4}, register {i % 4}")));
        }
        return results;
    }

    /// <summary>
    /// One contraction rule on the GPU and the emulator (CMakeLists.txt): a·b + c written out is rounded twice, fma_rn once.
    /// The first case, (1 + 2⁻¹²)² − (1 + 2⁻¹¹), is 0 rounded twice and 2⁻²⁴ fused; the random ones differ about half the time.
    /// </summary>
    private static List<KernelCheckResult> Contraction(IDevice device, Random random)
    {
        const int n = 1000;
        float[] a = new float[n], b = new float[n], c = new float[n];
        a[0] = b[0] = 1 + MathF.Pow(2, -12);
        c[0] = -(1 + MathF.Pow(2, -11));
        for (int i = 1; i < n; i++)
        {
            a[i] = (float)(random.NextDouble() * 4 - 2);
            b[i] = (float)(random.NextDouble() * 4 - 2);
            c[i] = -a[i] * b[i] * (float)(1 + (random.NextDouble() - 0.5) * 1e-3); // near −a·b, where the roundings show
        }
        var expected = new float[2 * n];
        for (int i = 0; i < n; i++)
        {
            float product = a[i] * b[i]; // RyuJIT never contracts: rounded here
            expected[2 * i] = product + c[i];
            expected[2 * i + 1] = MathF.FusedMultiplyAdd(a[i], b[i], c[i]);
        }
        if (expected[0] == expected[1])
        {
            throw new InvalidOperationException("the contraction check's first case no longer tells a fused multiply-add from an unfused one");
        }
        using var run = new CheckRun(device);
        DevicePtr pa = run.Put<float>(a), pb = run.Put<float>(b), pc = run.Put<float>(c), output = run.Poisoned<float>(2 * n);
        run.StartClock();
        SelfTestKernels.Contraction(device, pa, pb, pc, output, n);
        var elapsed = run.StopClock();
        return [KernelComparison.Compare("selftest_contraction", Text($"{n} a·b + c"), run.Get<float>(output, 2 * n), expected, 0, elapsed,
            i => Text($"{(i % 2 == 0 ? "a·b + c" : "fma_rn(a, b, c)")} of case {i / 2}"))];
    }

    /// <summary>
    /// d = a·b + c for 16×16 by 16×8 bf16 and 16×8 fp32. Small integers make every product and sum exact, so
    /// the result must be exact; random values get 1e-5 of Σ|terms| (tensor cores round their sum their own way).
    /// </summary>
    private static List<KernelCheckResult> Mma(IDevice device, Random random, bool throughLdMatrix)
    {
        var results = new List<KernelCheckResult>();
        foreach (bool exact in new[] { true, false })
        {
            float Value() => exact ? random.Next(-8, 9) : (float)(random.NextDouble() * 4 - 2);
            ushort[] a = [.. Enumerable.Range(0, 16 * 16).Select(_ => HalfPrecision.ToBFloat16(Value()))];
            ushort[] b = [.. Enumerable.Range(0, 16 * 8).Select(_ => HalfPrecision.ToBFloat16(Value()))];
            float[] c = [.. Enumerable.Range(0, 16 * 8).Select(_ => Value())];
            var expected = new double[16 * 8];
            var allowed = new double[16 * 8];
            for (int m = 0; m < 16; m++)
            {
                for (int n = 0; n < 8; n++)
                {
                    double sum = c[m * 8 + n], magnitude = Math.Abs(sum);
                    for (int k = 0; k < 16; k++)
                    {
                        double product = (double)HalfPrecision.FromBFloat16(a[m * 16 + k]) * HalfPrecision.FromBFloat16(b[k * 8 + n]);
                        sum += product;
                        magnitude += Math.Abs(product);
                    }
                    expected[m * 8 + n] = (float)sum;
                    allowed[m * 8 + n] = exact ? 0 : 1e-5 * magnitude;
                }
            }
            using var run = new CheckRun(device);
            DevicePtr pa = run.Put<ushort>(a), pb = run.Put<ushort>(b), pc = run.Put<float>(c), pd = run.Poisoned<float>(16 * 8);
            run.StartClock();
            if (throughLdMatrix)
            {
                SelfTestKernels.MmaThroughLdMatrix(device, pa, pb, pc, pd);
            }
            else
            {
                SelfTestKernels.Mma(device, pa, pb, pc, pd);
            }
            var elapsed = run.StopClock();
            double[] got = [.. run.Get<float>(pd, 16 * 8).Select(x => (double)x)];
            results.Add(KernelComparison.Compare(throughLdMatrix ? "selftest_mma_ldmatrix" : "selftest_mma", exact ? "small integers" : "random values",
                got, expected, allowed, exact ? "exact" : "1e-5 of Σ|terms|", elapsed, i => Text($"d[{i / 8},{i % 8}]")));
        }
        return results;
    }
}
