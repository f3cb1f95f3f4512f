using CudaFinetune.Backends.Cpu;
using CudaFinetune.Tensors;
using NUnit.Framework;
using static CudaFinetune.Tests.Support.HostTensors;

namespace CudaFinetune.Tests.Backends.Cpu;

/// <summary>The blocked GEMM against a plain triple loop, across shapes that hit every edge of the tiling.</summary>
[TestFixture]
public sealed class GemmTests
{
    private static double[] Naive(bool ta, bool tb, int m, int n, int k, double alpha, double[] a, double[] b, double beta, double[] c)
    {
        var result = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                {
                    double av = ta ? a[p * m + i] : a[i * k + p];
                    double bv = tb ? b[j * k + p] : b[p * n + j];
                    s += av * bv;
                }
                result[i * n + j] = alpha * s + (beta == 0 ? 0 : beta * c[i * n + j]);
            }
        }
        return result;
    }

    private static IEnumerable<TestCaseData> Shapes()
    {
        int[][] shapes = [[1, 1, 1], [7, 5, 3], [6, 32, 256], [13, 33, 257], [97, 70, 300], [200, 515, 40], [5, 1030, 17]];
        foreach (var s in shapes)
        {
            foreach (bool ta in new[] { false, true })
            {
                foreach (bool tb in new[] { false, true })
                {
                    yield return new TestCaseData(s[0], s[1], s[2], ta, tb);
                }
            }
        }
    }

    [TestCaseSource(nameof(Shapes))]
    public void Matches_naive_product_in_double(int m, int n, int k, bool ta, bool tb)
    {
        using var backend = new CpuBackend(DType.F64, threads: 2);
        var rng = new Random(m * 1000 + n * 10 + k);
        double[] a = Random(rng, m * k), b = Random(rng, k * n), c = Random(rng, m * n);
        using var tA = ta ? FromDoubles(backend, a, k, m) : FromDoubles(backend, a, m, k);
        using var tB = tb ? FromDoubles(backend, b, n, k) : FromDoubles(backend, b, k, n);
        using var tC = FromDoubles(backend, c, m, n);
        backend.MatMul(tA, ta, tB, tb, tC, alpha: 0.5, beta: 2);
        Assert.That(Read(backend, tC), Is.EqualTo(Naive(ta, tb, m, n, k, 0.5, a, b, 2, c)).Within(1e-11));
    }

    [TestCase(33, 65, 513)]
    [TestCase(128, 256, 96)]
    public void Float_matches_naive_product_within_float_rounding(int m, int n, int k)
    {
        using var backend = new CpuBackend(DType.F32, threads: 2);
        var rng = new Random(11);
        double[] a = Random(rng, m * k), b = Random(rng, k * n);
        using var tA = FromDoubles(backend, a, m, k);
        using var tB = FromDoubles(backend, b, n, k);
        using var tC = backend.Allocate(DType.F32, new Shape(m, n));
        backend.Fill(tC, float.NaN);
        backend.MatMul(tA, false, tB, true, tC);
        double[] expected = Naive(false, true, m, n, k, 1, [.. a.Select(v => (double)(float)v)], [.. b.Select(v => (double)(float)v)], 0, new double[m * n]);
        Assert.That(Read(backend, tC), Is.EqualTo(expected).Within(1e-4), "beta = 0 ignores the NaN already in C");
    }

    [Test]
    public void Result_is_bitwise_identical_for_one_and_two_threads()
    {
        var rng = new Random(12);
        int m = 150, n = 700, k = 600;
        double[] a = Random(rng, m * k), b = Random(rng, k * n);
        float[] Run(int threads)
        {
            using var backend = new CpuBackend(DType.F32, threads);
            using var tA = FromDoubles(backend, a, k, m);
            using var tB = FromDoubles(backend, b, k, n);
            using var tC = backend.Allocate(DType.F32, new Shape(m, n));
            backend.MatMul(tA, true, tB, false, tC);
            return tC.HostSpan<float>().ToArray();
        }
        Assert.That(Run(2), Is.EqualTo(Run(1)));
    }

    [TestCase(false, false)]
    [TestCase(true, true)]
    public unsafe void The_256_and_512_bit_micro_kernels_give_the_same_bits(bool transA, bool transB)
    {
        // What the x86-64-v3 build (256-bit vectors) and the v4 build (512-bit) compute in the GEMM: every element of C is
        // summed over K in the same order at either width, so the products must agree to the bit.
        if (!System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated)
        {
            Assert.Ignore("512-bit vectors are not accelerated here: only the 256-bit micro-kernel can run");
        }
        const int m = 45, n = 200, k = 600; // edge tiles in both directions, three K blocks
        var rng = new Random(14);
        float[] a = [.. Random(rng, m * k).Select(v => (float)v)], b = [.. Random(rng, k * n).Select(v => (float)v)], c0 = [.. Random(rng, m * n).Select(v => (float)v)];
        float[] Run(bool narrow)
        {
            using var pool = new CpuWorkerPool(threads: 2);
            float[] c = (float[])c0.Clone(), packed = new float[CpuGemm.PackedBBytes<float>(n, k) / sizeof(float)];
            fixed (float* pa = a, pb = b, pc = c, pp = packed)
            {
                CpuGemm.Run(pool, pp, transA, transB, m, n, k, 0.75f, pa, transA ? m : k, pb, transB ? k : n, -1.5f, pc, n, narrow);
            }
            return c;
        }
        float[] wide = Run(narrow: false), narrow = Run(narrow: true);
        Assert.That(CpuGemm.Nr<float>(narrow: true), Is.LessThan(CpuGemm.Nr<float>()), "two micro-kernels ran");
        Assert.That(narrow, Is.EqualTo(wide));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void A_row_rounds_the_same_in_a_full_micro_tile_and_in_an_edge_tile(bool transA)
    {
        // Full micro-tiles merge into C from vector registers, edge tiles through a scalar loop: both must give the
        // same bits, or a result would depend on where its row falls. Row i of C depends only on row i of op(A), so
        // the first 5 rows of a 12 × 64 product (full tiles) must equal a 5 × 40 product (edge tiles in both directions).
        const int k = 600;
        var rng = new Random(13);
        double[] a = Random(rng, 12 * k), b = Random(rng, 64 * k), c = Random(rng, 12 * 64);
        float[] Run(int m, int n)
        {
            using var backend = new CpuBackend(DType.F32, threads: 2);
            double[] aRows = transA
                ? [.. Enumerable.Range(0, k * m).Select(i => a[i / m * 12 + i % m])]
                : a[..(m * k)];
            using var tA = transA ? FromDoubles(backend, aRows, k, m) : FromDoubles(backend, aRows, m, k);
            using var tB = FromDoubles(backend, b[..(n * k)], n, k);
            using var tC = FromDoubles(backend, [.. Enumerable.Range(0, m * n).Select(i => c[i / n * 64 + i % n])], m, n);
            backend.MatMul(tA, transA, tB, true, tC, alpha: 0.75, beta: -1.5);
            return tC.HostSpan<float>().ToArray();
        }
        float[] full = Run(12, 64), edge = Run(5, 40);
        float[] fullCorner = [.. Enumerable.Range(0, 5 * 40).Select(i => full[i / 40 * 64 + i % 40])];
        Assert.That(edge, Is.EqualTo(fullCorner));
    }

    [Test]
    public void Mismatched_shapes_are_refused_with_the_shapes_named()
    {
        using var backend = new CpuBackend(DType.F32, threads: 1);
        using var a = backend.Allocate(DType.F32, new Shape(3, 4));
        using var b = backend.Allocate(DType.F32, new Shape(5, 6));
        using var c = backend.Allocate(DType.F32, new Shape(3, 6));
        var e = Assert.Throws<ArgumentException>(() => backend.MatMul(a, false, b, false, c));
        Assert.That(e!.Message, Does.Contain("[3, 4]").And.Contain("[5, 6]"));
    }
}
