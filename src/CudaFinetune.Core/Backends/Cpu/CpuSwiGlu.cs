using System.Numerics;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// SwiGLU: out = silu(g) ⊙ u with silu(g) = g·σ(g).
/// Backward: du = dout ⊙ silu(g); dg = dout ⊙ u ⊙ σ(g)·(1 + g·(1 − σ(g))).
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
            long start = (long)index * CpuElementwise.Chunk, end = Math.Min(Count, start + CpuElementwise.Chunk);
            for (long i = start; i < end; i++)
            {
                T g = Gate[i];
                T sigmoid = T.One / (T.One + T.Exp(-g));
                T silu = g * sigmoid;
                if (!Backward)
                {
                    Output[i] = silu * Up[i];
                    continue;
                }
                T d = DOutput[i];
                DUp[i] = d * silu;
                DGate[i] = d * Up[i] * sigmoid * (T.One + g * (T.One - sigmoid));
            }
        }
    }
}
