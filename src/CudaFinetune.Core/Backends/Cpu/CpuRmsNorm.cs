using System.Numerics;
using System.Numerics.Tensors;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// RMSNorm as in Hugging Face's LlamaRMSNorm: y = (x · r) ⊙ w with r = 1/√(mean(x²) + ε).
/// Backward: dx += r · (g − x̂ · mean(g ⊙ x̂)) with g = dy ⊙ w and x̂ = x · r; dw += Σ_rows dy ⊙ x̂,
/// computed column block by column block so every column is summed in row order.
/// </summary>
internal static unsafe class CpuRmsNorm
{
    private const int ColumnBlock = 64;

    public static void Forward<T>(CpuWorkerPool pool, T* x, T* weight, T epsilon, T* output, T* rstd, int rows, int cols)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var job = new ForwardJob<T> { X = x, Weight = weight, Epsilon = epsilon, Output = output, Rstd = rstd, Cols = cols, Rows = rows, RowsPerTask = RowsPerTask(cols) };
        pool.For((rows + job.RowsPerTask - 1) / job.RowsPerTask, ref job);
    }

    public static void Backward<T>(CpuWorkerPool pool, T* dy, T* x, T* weight, T* rstd, T* dx, T* dWeight, int rows, int cols)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var job = new BackwardJob<T> { Dy = dy, X = x, Weight = weight, Rstd = rstd, Dx = dx, Cols = cols, Rows = rows, RowsPerTask = RowsPerTask(cols) };
        pool.For((rows + job.RowsPerTask - 1) / job.RowsPerTask, ref job);
        if (dWeight != null)
        {
            var wJob = new WeightGradJob<T> { Dy = dy, X = x, Rstd = rstd, DWeight = dWeight, Cols = cols, Rows = rows };
            pool.For((cols + ColumnBlock - 1) / ColumnBlock, ref wJob);
        }
    }

    internal static int RowsPerTask(int cols) => Math.Max(1, 8192 / Math.Max(1, cols));

    private struct ForwardJob<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* X, Weight, Output, Rstd;
        public T Epsilon;
        public int Rows, Cols, RowsPerTask;

        public readonly void Execute(int index)
        {
            var w = new ReadOnlySpan<T>(Weight, Cols);
            int end = Math.Min(Rows, (index + 1) * RowsPerTask);
            for (int r = index * RowsPerTask; r < end; r++)
            {
                var xr = new ReadOnlySpan<T>(X + (long)r * Cols, Cols);
                var yr = new Span<T>(Output + (long)r * Cols, Cols);
                T inv = T.One / T.Sqrt(TensorPrimitives.SumOfSquares(xr) / T.CreateTruncating(Cols) + Epsilon);
                Rstd[r] = inv;
                TensorPrimitives.Multiply(xr, inv, yr);
                TensorPrimitives.Multiply(yr, w, yr);
            }
        }
    }

    private struct BackwardJob<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* Dy, X, Weight, Rstd, Dx;
        public int Rows, Cols, RowsPerTask;

        public readonly void Execute(int index)
        {
            var w = new ReadOnlySpan<T>(Weight, Cols);
            int end = Math.Min(Rows, (index + 1) * RowsPerTask);
            for (int r = index * RowsPerTask; r < end; r++)
            {
                T* dy = Dy + (long)r * Cols, x = X + (long)r * Cols, dx = Dx + (long)r * Cols;
                T inv = Rstd[r];
                // mean(g ⊙ x̂) = r · mean(dy ⊙ w ⊙ x)
                T dot = T.Zero;
                for (int c = 0; c < Cols; c++)
                {
                    dot += dy[c] * w[c] * x[c];
                }
                T coef = dot * inv * inv / T.CreateTruncating(Cols);
                for (int c = 0; c < Cols; c++)
                {
                    dx[c] += inv * (dy[c] * w[c] - x[c] * coef);
                }
            }
        }
    }

    private struct WeightGradJob<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* Dy, X, Rstd, DWeight;
        public int Rows, Cols;

        public readonly void Execute(int index)
        {
            int c0 = index * ColumnBlock, width = Math.Min(ColumnBlock, Cols - c0);
            var acc = new Span<T>(DWeight + c0, width);
            for (int r = 0; r < Rows; r++)
            {
                long o = (long)r * Cols + c0;
                T inv = Rstd[r];
                for (int c = 0; c < width; c++)
                {
                    acc[c] += Dy[o + c] * X[o + c] * inv;
                }
            }
        }
    }
}
