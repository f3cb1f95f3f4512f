using System.Numerics;
using System.Numerics.Tensors;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// Causal grouped-query attention with an exact softmax, computed a block of query rows at a time
/// with inline GEMMs (the CPU may hold a block × keys slab of scores; only the GPU kernel must
/// avoid it). Per (batch, head) in the forward, per (batch, kv head) in the backward so each task
/// owns its dk and dv rows; every sum runs in a fixed order.
/// <para>Forward, block rows t: S = scale·Q·Kᵀ, P = softmax over j ≤ t, O = P·V, lse = logsumexp.</para>
/// <para>Backward: P = exp(S − lse) on j ≤ t; dV += Pᵀ·dO; dP = dO·Vᵀ; dS = scale·P ⊙ (dP − rowsum(dO ⊙ O));
/// dQ = dS·K; dK += dSᵀ·Q.</para>
/// </summary>
internal static unsafe class CpuAttention
{
    /// <summary>Query rows per block.</summary>
    private const int BlockRows = 64;

    public static void Forward<T>(CpuWorkerPool pool, T* q, T* k, T* v, T* output, T* lse, in AttentionShape shape)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Reserve<T>(pool, shape, backward: false);
        var job = new Job<T> { Q = q, K = k, V = v, Out = output, Lse = lse, Shape = shape, Scale = T.CreateTruncating(shape.Scale) };
        pool.For(shape.Batch * shape.QueryHeads, ref job);
    }

    public static void Backward<T>(CpuWorkerPool pool, T* dOut, T* q, T* k, T* v, T* output, T* lse, T* dq, T* dk, T* dv, in AttentionShape shape)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Reserve<T>(pool, shape, backward: true);
        var job = new Job<T>
        {
            Q = q, K = k, V = v, Out = output, Lse = lse, Shape = shape, Scale = T.CreateTruncating(shape.Scale),
            DOut = dOut, DQ = dq, DK = dk, DV = dv, Backward = true,
        };
        pool.For(shape.Batch * shape.KvHeads, ref job);
    }

    /// <summary>Scratch every task needs: score blocks and the inline GEMMs' packing buffers (largest op(B): Kᵀ or V).</summary>
    private static void Reserve<T>(CpuWorkerPool pool, in AttentionShape shape, bool backward) where T : unmanaged
    {
        long block = (long)BlockRows * shape.SeqLen * sizeof(T);
        pool.Reserve(ScratchSlot.Scores, block);
        if (backward)
        {
            pool.Reserve(ScratchSlot.ScoreGradients, block);
        }
        pool.Reserve(ScratchSlot.GemmPackA, CpuGemm.PackedABytes<T>());
        pool.Reserve(ScratchSlot.GemmPackB, Math.Max(CpuGemm.PackedBBytes<T>(shape.SeqLen, shape.HeadDim), CpuGemm.PackedBBytes<T>(shape.HeadDim, shape.SeqLen)));
    }

    private struct Job<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* Q, K, V, Out, Lse, DOut, DQ, DK, DV;
        public AttentionShape Shape;
        public T Scale;
        public bool Backward;

        private readonly int QStride => Shape.QueryHeads * Shape.HeadDim;

        private readonly int KvStride => Shape.KvHeads * Shape.HeadDim;

        /// <summary>Row t of head h in batch b of a [tokens, queryHeads·headDim] tensor.</summary>
        private readonly T* QRows(T* basePtr, int b, int h, int t) => basePtr + ((long)(b * Shape.SeqLen + t) * Shape.QueryHeads + h) * Shape.HeadDim;

        private readonly T* KvRows(T* basePtr, int b, int h, int t) => basePtr + ((long)(b * Shape.SeqLen + t) * Shape.KvHeads + h) * Shape.HeadDim;

        public readonly void Execute(int index)
        {
            if (Backward)
            {
                BackwardKvHead(index / Shape.KvHeads, index % Shape.KvHeads);
            }
            else
            {
                ForwardHead(index / Shape.QueryHeads, index % Shape.QueryHeads);
            }
        }

        private readonly void ForwardHead(int b, int h)
        {
            int d = Shape.HeadDim, kvh = h / Shape.GroupSize;
            T* scores = WorkerScratch.Current.Get<T>(ScratchSlot.Scores, (long)BlockRows * Shape.SeqLen);
            for (int t0 = 0; t0 < Shape.SeqLen; t0 += BlockRows)
            {
                int rows = Math.Min(BlockRows, Shape.SeqLen - t0), keys = t0 + rows;
                Gemm(false, true, rows, keys, d, Scale, QRows(Q, b, h, t0), QStride, KvRows(K, b, kvh, 0), KvStride, T.Zero, scores, keys);
                for (int i = 0; i < rows; i++)
                {
                    int t = t0 + i;
                    var valid = new Span<T>(scores + (long)i * keys, t + 1);
                    T max = TensorPrimitives.Max<T>(valid);
                    TensorPrimitives.Subtract(valid, max, valid);
                    TensorPrimitives.Exp<T>(valid, valid);
                    T sum = TensorPrimitives.Sum<T>(valid);
                    TensorPrimitives.Multiply(valid, T.One / sum, valid);
                    new Span<T>(scores + (long)i * keys + t + 1, keys - t - 1).Clear();
                    Lse[((long)b * Shape.QueryHeads + h) * Shape.SeqLen + t] = max + T.Log(sum);
                }
                Gemm(false, false, rows, d, keys, T.One, scores, keys, KvRows(V, b, kvh, 0), KvStride, T.Zero, QRows(Out, b, h, t0), QStride);
            }
        }

        private readonly void BackwardKvHead(int b, int kvh)
        {
            int d = Shape.HeadDim;
            for (int t = 0; t < Shape.SeqLen; t++)
            {
                new Span<T>(KvRows(DK, b, kvh, t), d).Clear();
                new Span<T>(KvRows(DV, b, kvh, t), d).Clear();
            }
            T* probs = WorkerScratch.Current.Get<T>(ScratchSlot.Scores, (long)BlockRows * Shape.SeqLen);
            T* dScores = WorkerScratch.Current.Get<T>(ScratchSlot.ScoreGradients, (long)BlockRows * Shape.SeqLen);
            for (int h = kvh * Shape.GroupSize; h < (kvh + 1) * Shape.GroupSize; h++)
            {
                for (int t0 = 0; t0 < Shape.SeqLen; t0 += BlockRows)
                {
                    int rows = Math.Min(BlockRows, Shape.SeqLen - t0), keys = t0 + rows;
                    T* qBlock = QRows(Q, b, h, t0), dOutBlock = QRows(DOut, b, h, t0);
                    Gemm(false, true, rows, keys, d, Scale, qBlock, QStride, KvRows(K, b, kvh, 0), KvStride, T.Zero, probs, keys);
                    for (int i = 0; i < rows; i++)
                    {
                        int t = t0 + i;
                        var valid = new Span<T>(probs + (long)i * keys, t + 1);
                        TensorPrimitives.Subtract(valid, Lse[((long)b * Shape.QueryHeads + h) * Shape.SeqLen + t], valid);
                        TensorPrimitives.Exp<T>(valid, valid);
                        new Span<T>(probs + (long)i * keys + t + 1, keys - t - 1).Clear();
                    }
                    // dV[0:keys] += Pᵀ·dO
                    Gemm(true, false, keys, d, rows, T.One, probs, keys, dOutBlock, QStride, T.One, KvRows(DV, b, kvh, 0), KvStride);
                    // dP = dO·Vᵀ, then dS = scale·P ⊙ (dP − rowsum(dO ⊙ O))
                    Gemm(false, true, rows, keys, d, T.One, dOutBlock, QStride, KvRows(V, b, kvh, 0), KvStride, T.Zero, dScores, keys);
                    for (int i = 0; i < rows; i++)
                    {
                        int t = t0 + i;
                        T rowDot = TensorPrimitives.Dot(new ReadOnlySpan<T>(QRows(DOut, b, h, t), d), new ReadOnlySpan<T>(QRows(Out, b, h, t), d));
                        var ds = new Span<T>(dScores + (long)i * keys, keys);
                        TensorPrimitives.Subtract(ds, rowDot, ds);
                        TensorPrimitives.Multiply(ds, new ReadOnlySpan<T>(probs + (long)i * keys, keys), ds);
                        TensorPrimitives.Multiply(ds, Scale, ds);
                    }
                    // dQ = dS·K; dK[0:keys] += dSᵀ·Q
                    Gemm(false, false, rows, d, keys, T.One, dScores, keys, KvRows(K, b, kvh, 0), KvStride, T.Zero, QRows(DQ, b, h, t0), QStride);
                    Gemm(true, false, keys, d, rows, T.One, dScores, keys, qBlock, QStride, T.One, KvRows(DK, b, kvh, 0), KvStride);
                }
            }
        }

        /// <summary>A GEMM on this thread, with its packing buffer from the thread's scratch.</summary>
        private static void Gemm(bool transA, bool transB, int m, int n, int k, T alpha, T* a, int lda, T* b, int ldb, T beta, T* c, int ldc)
        {
            T* packed = WorkerScratch.Current.Get<T>(ScratchSlot.GemmPackB, CpuGemm.PackedBBytes<T>(n, k) / sizeof(T));
            CpuGemm.Run(null, packed, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        }
    }
}
