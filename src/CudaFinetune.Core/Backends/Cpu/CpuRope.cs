using System.Numerics;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// Rotary position embedding, Hugging Face's rotate-half layout: for i &lt; d/2 the pair
/// (x[i], x[i + d/2]) is rotated by the angle of frequency i at the token's position. The inverse
/// rotation is the transpose, which is the backward.
/// </summary>
internal static unsafe class CpuRope
{
    public static void Apply<T>(CpuWorkerPool pool, T* x, int tokens, int heads, int headDim, T* cos, T* sin, int seqLen, bool inverse)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var job = new Job<T> { X = x, Tokens = tokens, Heads = heads, HeadDim = headDim, Cos = cos, Sin = sin, SeqLen = seqLen, Inverse = inverse };
        job.TokensPerTask = Math.Max(1, 8192 / (heads * headDim));
        pool.For((tokens + job.TokensPerTask - 1) / job.TokensPerTask, ref job);
    }

    private struct Job<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* X, Cos, Sin;
        public int Tokens, Heads, HeadDim, SeqLen, TokensPerTask;
        public bool Inverse;

        public readonly void Execute(int index)
        {
            int half = HeadDim / 2;
            int end = Math.Min(Tokens, (index + 1) * TokensPerTask);
            for (int n = index * TokensPerTask; n < end; n++)
            {
                int pos = n % SeqLen;
                T* cos = Cos + (long)pos * half, sin = Sin + (long)pos * half;
                for (int h = 0; h < Heads; h++)
                {
                    T* v = X + ((long)n * Heads + h) * HeadDim;
                    for (int i = 0; i < half; i++)
                    {
                        T x1 = v[i], x2 = v[i + half], c = cos[i], s = Inverse ? -sin[i] : sin[i];
                        v[i] = x1 * c - x2 * s;
                        v[i + half] = x2 * c + x1 * s;
                    }
                }
            }
        }
    }
}
