using System.Numerics;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// PyTorch's single-tensor AdamW, elementwise, in the same order of operations:
/// p·(1 − lr·wd), then the moment updates, then p − stepSize·m / (√v / √bc2 + ε).
/// </summary>
internal static unsafe class CpuAdamW
{
    public static void Update<T>(CpuWorkerPool pool, T* p, T* g, T* m, T* v, long count, in AdamWStep step) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var job = new Job<T>
        {
            P = p, G = g, M = m, V = v, Count = count,
            Decay = T.CreateTruncating(1 - step.LearningRate * step.WeightDecay),
            Beta1 = T.CreateTruncating(step.Beta1), Beta2 = T.CreateTruncating(step.Beta2),
            OneMinusBeta1 = T.CreateTruncating(1 - step.Beta1), OneMinusBeta2 = T.CreateTruncating(1 - step.Beta2),
            StepSize = T.CreateTruncating(step.LearningRate / step.BiasCorrection1),
            BiasCorrection2Sqrt = T.CreateTruncating(Math.Sqrt(step.BiasCorrection2)),
            Epsilon = T.CreateTruncating(step.Epsilon), GradScale = T.CreateTruncating(step.GradientScale),
        };
        pool.For(CpuElementwise.Chunks(count), ref job);
    }

    private struct Job<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* P, G, M, V;
        public long Count;
        public T Decay, Beta1, Beta2, OneMinusBeta1, OneMinusBeta2, StepSize, BiasCorrection2Sqrt, Epsilon, GradScale;

        public readonly void Execute(int index)
        {
            long start = (long)index * CpuElementwise.Chunk, end = Math.Min(Count, start + CpuElementwise.Chunk);
            for (long i = start; i < end; i++)
            {
                T g = G[i] * GradScale;
                T p = P[i] * Decay;
                T m = Beta1 * M[i] + OneMinusBeta1 * g;
                T v = Beta2 * V[i] + OneMinusBeta2 * g * g;
                M[i] = m;
                V[i] = v;
                P[i] = p - StepSize * (m / (T.Sqrt(v) / BiasCorrection2Sqrt + Epsilon));
            }
        }
    }
}
