using System.Numerics;
using System.Numerics.Tensors;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// Softmax cross-entropy per row: loss = logsumexp(x) − x[target]; dlogits = (softmax(x) − onehot) · scale.
/// Rows whose target is negative (the ignore index) contribute no loss and no gradient.
/// </summary>
internal static unsafe class CpuCrossEntropy
{
    public static void Run<T>(CpuWorkerPool pool, T* logits, int* targets, T* rowLoss, T* dLogits, T scale, int rows, int vocab)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] >= vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(targets), targets[r], $"label at row {r} is outside the vocabulary of {vocab}");
            }
        }
        pool.Reserve(ScratchSlot.Row, (long)vocab * sizeof(T));
        var job = new Job<T> { Logits = logits, Targets = targets, RowLoss = rowLoss, DLogits = dLogits, Scale = scale, Vocab = vocab };
        pool.For(rows, ref job);
    }

    private struct Job<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* Logits, RowLoss, DLogits;
        public int* Targets;
        public T Scale;
        public int Vocab;

        public readonly void Execute(int r)
        {
            var x = new ReadOnlySpan<T>(Logits + (long)r * Vocab, Vocab);
            int target = Targets[r];
            if (target < 0)
            {
                RowLoss[r] = T.Zero;
                if (DLogits != null)
                {
                    new Span<T>(DLogits + (long)r * Vocab, Vocab).Clear();
                }
                return;
            }
            T targetLogit = x[target];
            T max = TensorPrimitives.Max(x);
            // e = exp(x − max), written where the gradient goes (which may be x itself) or to scratch.
            Span<T> e = DLogits == null ? WorkerScratch.Current.Row<T>(Vocab) : new Span<T>(DLogits + (long)r * Vocab, Vocab);
            TensorPrimitives.Subtract(x, max, e);
            TensorPrimitives.Exp(e, e);
            T sum = TensorPrimitives.Sum<T>(e);
            RowLoss[r] = max + T.Log(sum) - targetLogit;
            if (DLogits != null)
            {
                TensorPrimitives.Multiply(e, Scale / sum, e);
                e[target] -= Scale;
            }
        }
    }
}
