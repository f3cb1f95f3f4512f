using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;

namespace CudaFinetune.Benchmarks;

/// <summary>
/// The machine's fp32 fused-multiply-add peak, the ceiling GEMM GFLOP/s are judged against: every core runs
/// independent FMA chains on the widest vectors the JIT uses (Vector512 with AVX-512, else Vector256), enough chains
/// to hide the FMA latency, with nothing but registers involved. 2 FLOP per lane per FMA.
/// </summary>
public class FmaPeakBenchmarks : IThroughputBenchmark
{
    private const int Iterations = 1 << 22;

    public string Unit => "GFLOP/s";

    public double UnitScale => 1e9;

    /// <summary>The widest vector in use here, in fp32 lanes.</summary>
    private static int Lanes => Vector512.IsHardwareAccelerated ? 16 : 8;

    public double WorkPerInvocation(IReadOnlyDictionary<string, object> parameters) => 2.0 * Lanes * 12 * Iterations * Environment.ProcessorCount;

    [Benchmark]
    public float AllCores()
    {
        var sums = new float[Environment.ProcessorCount];
        Parallel.For(0, sums.Length, new ParallelOptions { MaxDegreeOfParallelism = sums.Length }, i => sums[i] = Vector512.IsHardwareAccelerated ? Chains512(i) : Chains256(i));
        return sums.Sum();
    }

    /// <summary>12 independent accumulators (latency 4 × 2 FMA ports, with room to spare).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Chains512(int seed)
    {
        var a = Vector512.Create(1.0000001f + seed);
        var b = Vector512.Create(0.9999999f);
        Vector512<float> c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
        for (int i = 0; i < Iterations; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(c0, b, a);
            c1 = Vector512.FusedMultiplyAdd(c1, b, a);
            c2 = Vector512.FusedMultiplyAdd(c2, b, a);
            c3 = Vector512.FusedMultiplyAdd(c3, b, a);
            c4 = Vector512.FusedMultiplyAdd(c4, b, a);
            c5 = Vector512.FusedMultiplyAdd(c5, b, a);
            c6 = Vector512.FusedMultiplyAdd(c6, b, a);
            c7 = Vector512.FusedMultiplyAdd(c7, b, a);
            c8 = Vector512.FusedMultiplyAdd(c8, b, a);
            c9 = Vector512.FusedMultiplyAdd(c9, b, a);
            c10 = Vector512.FusedMultiplyAdd(c10, b, a);
            c11 = Vector512.FusedMultiplyAdd(c11, b, a);
        }
        return Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Chains256(int seed)
    {
        var a = Vector256.Create(1.0000001f + seed);
        var b = Vector256.Create(0.9999999f);
        Vector256<float> c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
        for (int i = 0; i < Iterations; i++)
        {
            c0 = Vector256.FusedMultiplyAdd(c0, b, a);
            c1 = Vector256.FusedMultiplyAdd(c1, b, a);
            c2 = Vector256.FusedMultiplyAdd(c2, b, a);
            c3 = Vector256.FusedMultiplyAdd(c3, b, a);
            c4 = Vector256.FusedMultiplyAdd(c4, b, a);
            c5 = Vector256.FusedMultiplyAdd(c5, b, a);
            c6 = Vector256.FusedMultiplyAdd(c6, b, a);
            c7 = Vector256.FusedMultiplyAdd(c7, b, a);
            c8 = Vector256.FusedMultiplyAdd(c8, b, a);
            c9 = Vector256.FusedMultiplyAdd(c9, b, a);
            c10 = Vector256.FusedMultiplyAdd(c10, b, a);
            c11 = Vector256.FusedMultiplyAdd(c11, b, a);
        }
        return Vector256.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }
}
