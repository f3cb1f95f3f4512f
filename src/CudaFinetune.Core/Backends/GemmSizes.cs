using CudaFinetune.Tensors;

namespace CudaFinetune.Backends;

/// <summary>The sizes of <see cref="IBackend.MatMul"/>: op(a) is [M, K], op(b) [K, N], c [M, N].</summary>
public readonly record struct GemmSizes(int M, int N, int K)
{
    /// <summary>The sizes of c = op(a)·op(b), or an <see cref="ArgumentException"/> naming the shapes that disagree.</summary>
    public static GemmSizes Of(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(c);
        int m = transposeA ? a.Shape.Columns : a.Shape.Rows;
        int k = transposeA ? a.Shape.Rows : a.Shape.Columns;
        int kb = transposeB ? b.Shape.Columns : b.Shape.Rows;
        int n = transposeB ? b.Shape.Rows : b.Shape.Columns;
        if (k != kb || c.Shape.Rows != m || c.Shape.Columns != n)
        {
            throw new ArgumentException($"matmul shapes do not agree: op(a) {m}×{k} from {a.Shape}{(transposeA ? "ᵀ" : "")}, op(b) {kb}×{n} from {b.Shape}{(transposeB ? "ᵀ" : "")}, c {c.Shape}");
        }
        return new GemmSizes(m, n, k);
    }
}
