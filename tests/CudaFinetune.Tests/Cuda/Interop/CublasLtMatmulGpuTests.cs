using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Numerics;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Interop;

/// <summary>
/// cuBLASLt matmuls on a real GPU against the double-precision loops of <see cref="MatmulReference"/>: fp32, bf16 to
/// bf16 and to fp32, row-major through the swapped mapping, strided batches, and the plan cache. Ignored (with the
/// reason) where there is no GPU or no cuBLASLt.
/// </summary>
[TestFixture]
public sealed unsafe class CublasLtMatmulGpuTests() : GpuFixture(report => report.CublasLt)
{
    private CublasLtMatmul _matmul = null!;

    [OneTimeSetUp]
    public void CreateMatmul() => _matmul = CublasLtMatmul.Create();

    [OneTimeTearDown]
    public void DisposeMatmul() => _matmul?.Dispose();

    private static ushort[] ToBf16(float[] values) => Array.ConvertAll(values, HalfPrecision.ToBFloat16);

    /// <summary>The values bf16 storage actually holds, for the reference.</summary>
    private static float[] RoundedToBf16(float[] values) => Array.ConvertAll(values, v => HalfPrecision.FromBFloat16(HalfPrecision.ToBFloat16(v)));

    private static void AssertClose(float[] actual, double[] expected, double relative, string what)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), what);
        for (int i = 0; i < actual.Length; i++)
        {
            double tolerance = relative * Math.Max(1, Math.Abs(expected[i]));
            if (Math.Abs(actual[i] - expected[i]) > tolerance)
            {
                Assert.Fail($"{what}: element {i} is {actual[i]}, expected {expected[i]} ± {tolerance}");
            }
        }
    }

    [TestCase(false, false)]
    [TestCase(true, false)]
    [TestCase(false, true)]
    [TestCase(true, true)]
    public void Fp32_column_major_with_padding_and_beta_matches_the_reference(bool transposeA, bool transposeB)
    {
        const int m = 37, n = 19, k = 53;
        var packed = MatmulShape.ColumnMajor(m, n, k, transposeA, transposeB, CudaDataType.R32F, CudaDataType.R32F);
        // Leading dimensions padded past the stored rows, so lda/ldb/ldc are really honoured.
        var shape = packed with { Lda = packed.Lda + 3, Ldb = packed.Ldb + 5, Ldc = m + 2 };
        float[] a = MatmulReference.Random(MatmulReference.Span(shape.Lda, shape.StoredA.Cols, 1, 0), 11);
        float[] b = MatmulReference.Random(MatmulReference.Span(shape.Ldb, shape.StoredB.Cols, 1, 0), 12);
        float[] c = MatmulReference.Random(MatmulReference.Span(shape.Ldc, n, 1, 0), 13);
        double[] expected = MatmulReference.ColumnMajor(shape, 1.25, a, b, 0.5, c);

        ulong da = Upload(a), db = Upload(b), dc = Upload(c), dd = Upload(new float[c.Length]);
        _matmul.Run(shape, 1.25f, da, db, 0.5f, dc, dd, Gpu.Stream.Handle);
        Gpu.Synchronize();
        float[] d = Download<float>(dd, c.Length);
        for (int j = 0; j < n; j++)
        {
            for (int i = m; i < shape.Ldc; i++)
            {
                expected[i + j * shape.Ldc] = 0; // D's padding is not written: still the zeros uploaded
            }
        }
        AssertClose(d, expected, 1e-4, "D (out of place)");

        // In place (C is D), beta = 0: C is overwritten, not read.
        _matmul.Run(shape, 1.25f, da, db, 0f, dc, dc, Gpu.Stream.Handle);
        Gpu.Synchronize();
        double[] product = MatmulReference.ColumnMajor(shape, 1.25, a, b, 0, c);
        AssertClose(Download<float>(dc, c.Length), product, 1e-4, "C (in place, beta 0)");
    }

    [TestCase(false, false)]
    [TestCase(true, true)]
    public void Fp32_row_major_through_the_swapped_mapping_matches_a_row_major_product(bool transposeA, bool transposeB)
    {
        const int m = 13, n = 7, k = 29;
        float[] a = MatmulReference.Random(m * k, 21), b = MatmulReference.Random(k * n, 22);
        ulong da = Upload(a), db = Upload(b), dc = Upload(new float[m * n]);
        _matmul.RunRowMajor(m, n, k, transposeA, transposeB, CudaDataType.R32F, CudaDataType.R32F, 1f, da, db, 0f, dc, dc, Gpu.Stream.Handle);
        Gpu.Synchronize();
        double[] expected = MatmulReference.RowMajor(m, n, k, transposeA, transposeB, 1, 1, a, b, 0, new float[m * n]);
        AssertClose(Download<float>(dc, m * n), expected, 1e-4, "row-major C");
    }

    [Test]
    public void Fp32_strided_batch_matches_the_reference()
    {
        const int m = 24, n = 40, k = 56, batch = 3;
        var shape = MatmulShape.ColumnMajor(m, n, k, false, true, CudaDataType.R32F, CudaDataType.R32F, batch);
        float[] a = MatmulReference.Random(batch * m * k, 31), b = MatmulReference.Random(batch * k * n, 32), c = MatmulReference.Random(batch * m * n, 33);
        ulong da = Upload(a), db = Upload(b), dc = Upload(c);
        _matmul.Run(shape, 1f, da, db, 1f, dc, dc, Gpu.Stream.Handle);
        Gpu.Synchronize();
        AssertClose(Download<float>(dc, c.Length), MatmulReference.ColumnMajor(shape, 1, a, b, 1, c), 1e-4, "batched C");
    }

    [TestCase(false, false)]
    [TestCase(true, false)]
    [TestCase(false, true)]
    public void Bf16_inputs_to_a_bf16_output_match_the_reference_within_bf16_precision(bool transposeA, bool transposeB)
    {
        const int m = 64, n = 48, k = 96;
        var shape = MatmulShape.ColumnMajor(m, n, k, transposeA, transposeB, CudaDataType.R16BF, CudaDataType.R16BF);
        float[] a = RoundedToBf16(MatmulReference.Random(m * k, 41)), b = RoundedToBf16(MatmulReference.Random(k * n, 42));
        float[] c = RoundedToBf16(MatmulReference.Random(m * n, 43));
        ulong da = Upload(ToBf16(a)), db = Upload(ToBf16(b)), dc = Upload(ToBf16(c)), dd = Upload(new ushort[m * n]);
        _matmul.Run(shape, 1f, da, db, 0.5f, dc, dd, Gpu.Stream.Handle);
        Gpu.Synchronize();
        float[] d = Array.ConvertAll(Download<ushort>(dd, m * n), HalfPrecision.FromBFloat16);
        AssertClose(d, MatmulReference.ColumnMajor(shape, 1, a, b, 0.5, c), 1e-2, "bf16 D");
    }

    [Test]
    public void Bf16_inputs_to_an_fp32_output_match_the_reference()
    {
        const int m = 64, n = 48, k = 96;
        var shape = MatmulShape.ColumnMajor(m, n, k, true, false, CudaDataType.R16BF, CudaDataType.R32F);
        float[] a = RoundedToBf16(MatmulReference.Random(m * k, 51)), b = RoundedToBf16(MatmulReference.Random(k * n, 52));
        float[] c = MatmulReference.Random(m * n, 53);
        ulong da = Upload(ToBf16(a)), db = Upload(ToBf16(b)), dc = Upload(c);
        _matmul.Run(shape, 2f, da, db, -1f, dc, dc, Gpu.Stream.Handle);
        Gpu.Synchronize();
        // The inputs are exact in bf16 and accumulation is fp32: only fp32 rounding separates the result from the reference.
        AssertClose(Download<float>(dc, m * n), MatmulReference.ColumnMajor(shape, 2, a, b, -1, c), 1e-3, "fp32 C from bf16 inputs");
    }

    [Test]
    public void Bf16_row_major_strided_batch_matches_a_row_major_product()
    {
        const int m = 32, n = 16, k = 64, batch = 4;
        float[] a = RoundedToBf16(MatmulReference.Random(batch * m * k, 61)), b = RoundedToBf16(MatmulReference.Random(batch * k * n, 62));
        ulong da = Upload(ToBf16(a)), db = Upload(ToBf16(b)), dc = Upload(new ushort[batch * m * n]);
        _matmul.RunRowMajor(m, n, k, false, true, CudaDataType.R16BF, CudaDataType.R16BF, 1f, da, db, 0f, dc, dc, Gpu.Stream.Handle, batch);
        Gpu.Synchronize();
        float[] c = Array.ConvertAll(Download<ushort>(dc, batch * m * n), HalfPrecision.FromBFloat16);
        AssertClose(c, MatmulReference.RowMajor(m, n, k, false, true, batch, 1, a, b, 0, new float[batch * m * n]), 1e-2, "batched bf16 C");
    }

    [Test]
    public void A_shape_is_planned_once_and_a_repeated_run_allocates_nothing()
    {
        using var matmul = CublasLtMatmul.Create(1 << 20);
        var shape = MatmulShape.ColumnMajor(64, 32, 128, false, false, CudaDataType.R16BF, CudaDataType.R32F);
        var plan = matmul.Plan(shape);
        Assert.That(matmul.Plan(MatmulShape.ColumnMajor(64, 32, 128, false, false, CudaDataType.R16BF, CudaDataType.R32F)), Is.SameAs(plan), "an equal shape built again");
        Assert.That((matmul.PlanCount, matmul.HeuristicCalls), Is.EqualTo((1, 1)));
        Assert.That(plan.WorkspaceBytes, Is.LessThanOrEqualTo((nuint)(1 << 20)), "the heuristic keeps within the workspace it was given");

        var other = shape with { TransposeA = true, Lda = 128 };
        Assert.That(matmul.Plan(other), Is.Not.SameAs(plan));
        Assert.That((matmul.PlanCount, matmul.HeuristicCalls), Is.EqualTo((2, 2)));

        ulong da = Upload(new ushort[64 * 128]), db = Upload(new ushort[128 * 32]), dc = Upload(new float[64 * 32]);
        matmul.Run(shape, 1f, da, db, 0f, dc, dc, Gpu.Stream.Handle); // warm: first calls bind the entry points
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++)
        {
            matmul.Run(shape, 1f, da, db, 0f, dc, dc, Gpu.Stream.Handle);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Gpu.Synchronize();
        Assert.That(allocated, Is.Zero, "a cached shape runs without allocating");
        Assert.That((matmul.PlanCount, matmul.HeuristicCalls), Is.EqualTo((2, 2)), "no new plan, no new heuristic call");
    }

    [Test]
    public void Misaligned_operands_are_refused()
    {
        var shape = MatmulShape.ColumnMajor(8, 8, 8, false, false, CudaDataType.R32F, CudaDataType.R32F);
        ulong da = Upload(new float[72]), db = Upload(new float[64]), dc = Upload(new float[64]);
        Assert.Throws<ArgumentException>(() => _matmul.Run(shape, 1f, da + 4, db, 0f, dc, dc, default));
    }
}
