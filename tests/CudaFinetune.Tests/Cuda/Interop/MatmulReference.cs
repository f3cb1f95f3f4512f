using CudaFinetune.Cuda.Runtime;

namespace CudaFinetune.Tests.Cuda.Interop;

/// <summary>Plain-loop matmuls in double, the yardstick for cuBLASLt and for the row-major mapping.</summary>
internal static class MatmulReference
{
    /// <summary>Elements a column-major operand of <paramref name="cols"/> columns spans over a batch.</summary>
    public static int Span(long leadingDimension, int cols, int batchCount, long batchStride)
        => checked((int)((batchCount - 1) * batchStride + leadingDimension * cols));

    /// <summary>
    /// What cuBLASLt computes for <paramref name="shape"/>, column-major with leading dimensions and batch strides:
    /// D = alpha·op(A)·op(B) + beta·C. Entries of D outside the matrices (padding) are copied from C.
    /// </summary>
    public static double[] ColumnMajor(in MatmulShape shape, double alpha, float[] a, float[] b, double beta, float[] c)
    {
        var d = Array.ConvertAll(c, v => (double)v);
        for (int p = 0; p < shape.BatchCount; p++)
        {
            long offsetA = p * shape.StrideA, offsetB = p * shape.StrideB, offsetC = p * shape.StrideC;
            for (int j = 0; j < shape.N; j++)
            {
                for (int i = 0; i < shape.M; i++)
                {
                    double sum = 0;
                    for (int l = 0; l < shape.K; l++)
                    {
                        double av = shape.TransposeA ? a[offsetA + l + i * shape.Lda] : a[offsetA + i + l * shape.Lda];
                        double bv = shape.TransposeB ? b[offsetB + j + l * shape.Ldb] : b[offsetB + l + j * shape.Ldb];
                        sum += av * bv;
                    }
                    long at = offsetC + i + j * shape.Ldc;
                    d[at] = alpha * sum + (beta == 0 ? 0 : beta * c[at]);
                }
            }
        }
        return d;
    }

    /// <summary>Row-major C[m×n] = alpha·op(A)·op(B) + beta·C per batch on packed matrices (A m×k or k×m, B k×n or n×k).</summary>
    public static double[] RowMajor(int m, int n, int k, bool transposeA, bool transposeB, int batchCount, double alpha, float[] a, float[] b, double beta, float[] c)
    {
        var result = new double[batchCount * m * n];
        for (int p = 0; p < batchCount; p++)
        {
            int offsetA = p * m * k, offsetB = p * k * n, offsetC = p * m * n;
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double sum = 0;
                    for (int l = 0; l < k; l++)
                    {
                        double av = transposeA ? a[offsetA + l * m + i] : a[offsetA + i * k + l];
                        double bv = transposeB ? b[offsetB + j * k + l] : b[offsetB + l * n + j];
                        sum += av * bv;
                    }
                    result[offsetC + i * n + j] = alpha * sum + (beta == 0 ? 0 : beta * c[offsetC + i * n + j]);
                }
            }
        }
        return result;
    }

    /// <summary>Uniform values in [-1, 1), reproducibly.</summary>
    public static float[] Random(int count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (float)(random.NextDouble() * 2 - 1);
        }
        return values;
    }
}
