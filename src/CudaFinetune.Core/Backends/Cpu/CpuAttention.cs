using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// Causal grouped-query attention, exact softmax, one query row at a time (the CPU needs no
/// tiling to avoid the T×T matrix: a row of scores lives in a per-thread buffer).
/// <para>Forward: s_j = scale·q·k_j (j ≤ t), out = Σ softmax(s)_j v_j, lse = logsumexp(s).</para>
/// <para>Backward, per (batch, kv head) so each task owns its dk and dv rows:
/// p_j = exp(s_j − lse), dp_j = dout·v_j, ds_j = p_j (dp_j − dout·out),
/// dq = scale Σ ds_j k_j, dk_j += scale ds_j q, dv_j += p_j dout.</para>
/// </summary>
internal static unsafe class CpuAttention
{
    public static void Forward<T>(CpuWorkerPool pool, T* q, T* k, T* v, T* output, T* lse, in AttentionShape shape)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var job = new Job<T> { Q = q, K = k, V = v, Out = output, Lse = lse, Shape = shape, Scale = T.CreateTruncating(shape.Scale) };
        pool.For(shape.Batch * shape.QueryHeads, ref job);
    }

    public static void Backward<T>(CpuWorkerPool pool, T* dOut, T* q, T* k, T* v, T* output, T* lse, T* dq, T* dk, T* dv, in AttentionShape shape)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var job = new Job<T>
        {
            Q = q, K = k, V = v, Out = output, Lse = lse, Shape = shape, Scale = T.CreateTruncating(shape.Scale),
            DOut = dOut, DQ = dq, DK = dk, DV = dv, Backward = true,
        };
        pool.For(shape.Batch * shape.KvHeads, ref job);
    }

    private struct Job<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* Q, K, V, Out, Lse, DOut, DQ, DK, DV;
        public AttentionShape Shape;
        public T Scale;
        public bool Backward;

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

        private readonly T* QRow(T* basePtr, int b, int t, int h) => basePtr + ((long)(b * Shape.SeqLen + t) * Shape.QueryHeads + h) * Shape.HeadDim;

        private readonly T* KvRow(T* basePtr, int b, int t, int h) => basePtr + ((long)(b * Shape.SeqLen + t) * Shape.KvHeads + h) * Shape.HeadDim;

        private readonly void ForwardHead(int b, int h)
        {
            int d = Shape.HeadDim, kvh = h / Shape.GroupSize;
            Span<T> scores = RowBuffer<T>.Get(Shape.SeqLen);
            for (int t = 0; t < Shape.SeqLen; t++)
            {
                var qRow = new ReadOnlySpan<T>(QRow(Q, b, t, h), d);
                T max = T.NegativeInfinity;
                for (int j = 0; j <= t; j++)
                {
                    T s = Scale * TensorPrimitives.Dot(qRow, new ReadOnlySpan<T>(KvRow(K, b, j, kvh), d));
                    scores[j] = s;
                    max = T.Max(max, s);
                }
                T sum = T.Zero;
                for (int j = 0; j <= t; j++)
                {
                    T p = T.Exp(scores[j] - max);
                    scores[j] = p;
                    sum += p;
                }
                var outRow = new Span<T>(QRow(Out, b, t, h), d);
                outRow.Clear();
                T inv = T.One / sum;
                for (int j = 0; j <= t; j++)
                {
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<T>(KvRow(V, b, j, kvh), d), scores[j] * inv, outRow, outRow);
                }
                Lse[((long)b * Shape.QueryHeads + h) * Shape.SeqLen + t] = max + T.Log(sum);
            }
        }

        private readonly void BackwardKvHead(int b, int kvh)
        {
            int d = Shape.HeadDim;
            for (int t = 0; t < Shape.SeqLen; t++)
            {
                new Span<T>(KvRow(DK, b, t, kvh), d).Clear();
                new Span<T>(KvRow(DV, b, t, kvh), d).Clear();
            }
            for (int h = kvh * Shape.GroupSize; h < (kvh + 1) * Shape.GroupSize; h++)
            {
                for (int t = 0; t < Shape.SeqLen; t++)
                {
                    var qRow = new ReadOnlySpan<T>(QRow(Q, b, t, h), d);
                    var dOutRow = new ReadOnlySpan<T>(QRow(DOut, b, t, h), d);
                    var dqRow = new Span<T>(QRow(DQ, b, t, h), d);
                    T lse = Lse[((long)b * Shape.QueryHeads + h) * Shape.SeqLen + t];
                    T rowDot = TensorPrimitives.Dot(dOutRow, new ReadOnlySpan<T>(QRow(Out, b, t, h), d));
                    dqRow.Clear();
                    for (int j = 0; j <= t; j++)
                    {
                        var kRow = new ReadOnlySpan<T>(KvRow(K, b, j, kvh), d);
                        var dvRow = new Span<T>(KvRow(DV, b, j, kvh), d);
                        var dkRow = new Span<T>(KvRow(DK, b, j, kvh), d);
                        T prob = T.Exp(Scale * TensorPrimitives.Dot(qRow, kRow) - lse);
                        T dp = TensorPrimitives.Dot(dOutRow, new ReadOnlySpan<T>(KvRow(V, b, j, kvh), d));
                        T ds = prob * (dp - rowDot) * Scale;
                        TensorPrimitives.MultiplyAdd(dOutRow, prob, dvRow, dvRow);
                        TensorPrimitives.MultiplyAdd(kRow, ds, dqRow, dqRow);
                        TensorPrimitives.MultiplyAdd(qRow, ds, dkRow, dkRow);
                    }
                }
            }
        }
    }

    /// <summary>A per-thread, grow-only row of scores.</summary>
    private static class RowBuffer<T> where T : unmanaged
    {
        [ThreadStatic]
        private static T[]? t_buffer;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Span<T> Get(int length)
        {
            if (t_buffer is null || t_buffer.Length < length)
            {
                t_buffer = new T[Math.Max(length, 1024)];
            }
            return t_buffer.AsSpan(0, length);
        }
    }
}
