using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Runtime;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Interop;

/// <summary>The matmul plan key and the row-major → column-major mapping, on the CPU.</summary>
[TestFixture]
public sealed class CublasLtMatmulShapeTests
{
    [Test]
    public void Equal_shapes_are_one_key_and_every_field_tells_shapes_apart()
    {
        var shape = MatmulShape.ColumnMajor(64, 48, 96, false, true, CudaDataType.R16BF, CudaDataType.R32F, batchCount: 3);
        var same = new MatmulShape(64, 48, 96, false, true, CudaDataType.R16BF, CudaDataType.R32F, 64, 48, 64, 3, 64 * 96, 96 * 48, 64 * 48);
        Assert.That(same, Is.EqualTo(shape));
        Assert.That(same.GetHashCode(), Is.EqualTo(shape.GetHashCode()));

        MatmulShape[] different =
        [
            shape with { M = 65 }, shape with { N = 47 }, shape with { K = 95 },
            shape with { TransposeA = true }, shape with { TransposeB = false },
            shape with { InputType = CudaDataType.R32F }, shape with { OutputType = CudaDataType.R16BF },
            shape with { Lda = 72 }, shape with { Ldb = 56 }, shape with { Ldc = 72 },
            shape with { BatchCount = 4 }, shape with { StrideA = 0 }, shape with { StrideB = 1 }, shape with { StrideC = 7 },
        ];
        var plans = new Dictionary<MatmulShape, int> { [shape] = 0 };
        for (int i = 0; i < different.Length; i++)
        {
            Assert.That(different[i], Is.Not.EqualTo(shape), $"variant {i}");
            Assert.That(plans.TryAdd(different[i], i + 1), Is.True, $"variant {i} is a new key");
        }
        Assert.That(plans.TryAdd(same, -1), Is.False, "an equal shape built separately finds the cached entry");
        Assert.That(plans[same], Is.Zero);
    }

    [Test]
    public void Column_major_shapes_are_packed()
    {
        var plain = MatmulShape.ColumnMajor(5, 7, 3, false, false, CudaDataType.R32F, CudaDataType.R32F);
        Assert.That((plain.Lda, plain.Ldb, plain.Ldc), Is.EqualTo((5L, 3L, 5L)));
        Assert.That((plain.BatchCount, plain.StrideA, plain.StrideB, plain.StrideC), Is.EqualTo((1, 0L, 0L, 0L)));
        var transposed = MatmulShape.ColumnMajor(5, 7, 3, true, true, CudaDataType.R32F, CudaDataType.R32F, batchCount: 2);
        Assert.That(transposed.StoredA, Is.EqualTo((3, 5)));
        Assert.That(transposed.StoredB, Is.EqualTo((7, 3)));
        Assert.That((transposed.Lda, transposed.Ldb, transposed.Ldc), Is.EqualTo((3L, 7L, 5L)));
        Assert.That((transposed.StrideA, transposed.StrideB, transposed.StrideC), Is.EqualTo((15L, 21L, 35L)));
    }

    [Test]
    public void Row_major_product_maps_to_the_swapped_column_major_product_known_case()
    {
        // Row-major A (2×3) times B (3×4): C = [[1,2,3,6],[4,5,6,15]].
        float[] a = [1, 2, 3, 4, 5, 6];
        float[] b = [1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1];
        var shape = MatmulShape.FromRowMajor(2, 4, 3, false, false, CudaDataType.R32F, CudaDataType.R32F);
        Assert.That((shape.M, shape.N, shape.K), Is.EqualTo((4, 2, 3)), "column-major Cᵀ is n×m");
        Assert.That((shape.TransposeA, shape.TransposeB), Is.EqualTo((false, false)));
        Assert.That((shape.Lda, shape.Ldb, shape.Ldc), Is.EqualTo((4L, 3L, 4L)), "each leading dimension is a row-major row length");
        shape.Validate();
        // cuBLASLt's A is the caller's B and its B the caller's A; its column-major D read row-major is C.
        double[] c = MatmulReference.ColumnMajor(shape, 1, b, a, 0, new float[8]);
        Assert.That(c, Is.EqualTo(new double[] { 1, 2, 3, 6, 4, 5, 6, 15 }));
    }

    [TestCase(false, false)]
    [TestCase(true, false)]
    [TestCase(false, true)]
    [TestCase(true, true)]
    public void Row_major_mapping_matches_a_row_major_product_for_every_transpose_and_a_batch(bool transposeA, bool transposeB)
    {
        const int m = 5, n = 7, k = 3, batch = 3;
        float[] a = MatmulReference.Random(batch * m * k, 1), b = MatmulReference.Random(batch * k * n, 2), c = MatmulReference.Random(batch * m * n, 3);
        var shape = MatmulShape.FromRowMajor(m, n, k, transposeA, transposeB, CudaDataType.R32F, CudaDataType.R32F, batch);
        shape.Validate();
        Assert.That((shape.TransposeA, shape.TransposeB), Is.EqualTo((transposeB, transposeA)), "the operands swap, so do their flags");
        double[] expected = MatmulReference.RowMajor(m, n, k, transposeA, transposeB, batch, 0.75, a, b, 0.5, c);
        double[] mapped = MatmulReference.ColumnMajor(shape, 0.75, b, a, 0.5, c);
        Assert.That(mapped, Is.EqualTo(expected).Within(1e-12));
    }

    [Test]
    public void Impossible_or_unsupported_shapes_are_refused()
    {
        var ok = MatmulShape.ColumnMajor(8, 8, 8, false, false, CudaDataType.R32F, CudaDataType.R32F);
        Assert.DoesNotThrow(ok.Validate);
        Assert.Throws<ArgumentException>((ok with { K = 0 }).Validate);
        Assert.Throws<ArgumentException>((ok with { BatchCount = 0 }).Validate);
        Assert.Throws<ArgumentException>((ok with { Lda = 7 }).Validate, "lda below A's rows");
        Assert.Throws<ArgumentException>((ok with { TransposeB = true, N = 9 }).Validate, "ldb below transposed B's rows (N)");
        Assert.Throws<ArgumentException>((ok with { Ldc = 4 }).Validate);
        Assert.Throws<ArgumentException>((ok with { StrideC = -1 }).Validate);
        Assert.Throws<NotSupportedException>((ok with { OutputType = CudaDataType.R16BF }).Validate, "fp32 inputs to a bf16 output");
        Assert.DoesNotThrow((ok with { InputType = CudaDataType.R16BF }).Validate);
        Assert.DoesNotThrow((ok with { InputType = CudaDataType.R16BF, OutputType = CudaDataType.R16BF }).Validate);
    }
}
