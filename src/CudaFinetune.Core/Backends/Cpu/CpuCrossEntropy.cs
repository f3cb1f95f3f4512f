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
            Span<T> d = DLogits == null ? default : new Span<T>(DLogits + (long)r * Vocab, Vocab);
            if (target < 0)
            {
                RowLoss[r] = T.Zero;
                d.Clear();
                return;
            }
            T max = TensorPrimitives.Max(x);
            T sum = T.Zero;
            for (int i = 0; i < Vocab; i++)
            {
                sum += T.Exp(x[i] - max);
            }
            T logSumExp = max + T.Log(sum);
            RowLoss[r] = logSumExp - x[target];
            if (DLogits == null)
            {
                return;
            }
            // d may alias x: read each logit before overwriting it.
            for (int i = 0; i < Vocab; i++)
            {
                d[i] = T.Exp(x[i] - logSumExp) * Scale;
            }
            d[target] -= Scale;
        }
    }
}
