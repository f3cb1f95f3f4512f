using System.Numerics;
using System.Numerics.Tensors;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// Attention of n new query rows (positions past..past+n−1) against a key/value cache, batch 1:
/// row i attends to cache rows 0..past+i with an exact softmax. One task per query head.
/// </summary>
internal static unsafe class CpuAttentionDecode
{
    public static void Run<T>(CpuWorkerPool pool, T* q, T* kCache, T* vCache, T* output, int rows, int past, in AttentionShape shape)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        pool.Reserve(ScratchSlot.Scores, (long)(past + rows) * sizeof(T));
        var job = new Job<T> { Q = q, K = kCache, V = vCache, Out = output, Rows = rows, Past = past, Shape = shape, Scale = T.CreateTruncating(shape.Scale) };
        pool.For(shape.QueryHeads, ref job);
    }

    private struct Job<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* Q, K, V, Out;
        public int Rows, Past;
        public AttentionShape Shape;
        public T Scale;

        public readonly void Execute(int h)
        {
            int d = Shape.HeadDim, kvh = h / Shape.GroupSize;
            int qStride = Shape.QueryHeads * d, kvStride = Shape.KvHeads * d;
            T* scores = WorkerScratch.Current.Get<T>(ScratchSlot.Scores, Past + Rows);
            for (int i = 0; i < Rows; i++)
            {
                int keys = Past + i + 1;
                var qRow = new ReadOnlySpan<T>(Q + (long)i * qStride + h * d, d);
                var s = new Span<T>(scores, keys);
                for (int j = 0; j < keys; j++)
                {
                    s[j] = Scale * TensorPrimitives.Dot(qRow, new ReadOnlySpan<T>(K + (long)j * kvStride + kvh * d, d));
                }
                T max = TensorPrimitives.Max<T>(s);
                TensorPrimitives.Subtract(s, max, s);
                TensorPrimitives.Exp<T>(s, s);
                TensorPrimitives.Multiply(s, T.One / TensorPrimitives.Sum<T>(s), s);
                var outRow = new Span<T>(Out + (long)i * qStride + h * d, d);
                outRow.Clear();
                for (int j = 0; j < keys; j++)
                {
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<T>(V + (long)j * kvStride + kvh * d, d), s[j], outRow, outRow);
                }
            }
        }
    }
}
