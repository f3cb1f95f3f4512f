using System.Numerics;
using System.Numerics.Tensors;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// SwiGLU: out = silu(g) ⊙ u with silu(g) = g·σ(g).
/// Backward: du = dout ⊙ silu(g); dg = dout ⊙ u ⊙ σ(g)·(1 + g·(1 − σ(g))).
/// Vectorised a chunk at a time with TensorPrimitives.
/// </summary>
internal static unsafe class CpuSwiGlu
{
    public static void Forward<T>(CpuWorkerPool pool, T* gate, T* up, T* output, long count) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var job = new Job<T> { Gate = gate, Up = up, Output = output, Count = count };
        pool.For(CpuElementwise.Chunks(count), ref job);
    }

    public static void Backward<T>(CpuWorkerPool pool, T* dOutput, T* gate, T* up, T* dGate, T* dUp, long count) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        pool.Reserve(ScratchSlot.Row, (long)CpuElementwise.Chunk * sizeof(T));
        var job = new Job<T> { DOutput = dOutput, Gate = gate, Up = up, DGate = dGate, DUp = dUp, Count = count, Backward = true };
        pool.For(CpuElementwise.Chunks(count), ref job);
    }

    private struct Job<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* Gate, Up, Output, DOutput, DGate, DUp;
        public long Count;
        public bool Backward;

        public readonly void Execute(int index)
        {
            long start = (long)index * CpuElementwise.Chunk;
            int n = (int)Math.Min(CpuElementwise.Chunk, Count - start);
            var g = new ReadOnlySpan<T>(Gate + start, n);
            var u = new ReadOnlySpan<T>(Up + start, n);
            if (!Backward)
            {
                var o = new Span<T>(Output + start, n);
                TensorPrimitives.Sigmoid(g, o);
                TensorPrimitives.Multiply(o, g, o);
                TensorPrimitives.Multiply(o, u, o);
                return;
            }
            var d = new ReadOnlySpan<T>(DOutput + start, n);
            var du = new Span<T>(DUp + start, n);
            var dg = new Span<T>(DGate + start, n);
            Span<T> sigmoid = WorkerScratch.Current.Row<T>(n);
            TensorPrimitives.Sigmoid(g, sigmoid);
            TensorPrimitives.Multiply(g, sigmoid, du);       // silu(g)
            TensorPrimitives.Multiply(du, d, du);            // du = dout · silu(g)
            TensorPrimitives.Subtract(T.One, sigmoid, dg);   // 1 − σ
            TensorPrimitives.Multiply(dg, g, dg);            // g(1 − σ)
            TensorPrimitives.Add(dg, T.One, dg);             // 1 + g(1 − σ)
            TensorPrimitives.Multiply(dg, sigmoid, dg);
            TensorPrimitives.Multiply(dg, u, dg);
            TensorPrimitives.Multiply(dg, d, dg);
        }
    }
}
