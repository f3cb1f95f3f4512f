using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using CudaFinetune.Numerics;

namespace CudaFinetune.Backends.Cpu;

/// <summary>Elementwise ops and reductions over flat element ranges, cut into fixed chunks.</summary>
internal static unsafe class CpuElementwise
{
    /// <summary>Elements per chunk: reductions sum each chunk, then the chunk sums in order, so the
    /// grouping (and the result) never depends on the thread count.</summary>
    internal const int Chunk = 16384;

    internal static int Chunks(long count) => (int)((count + Chunk - 1) / Chunk);

    public static void Add<T>(CpuWorkerPool pool, T* a, T* b, T* output, long count) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var job = new BinaryJob<T> { A = a, B = b, Output = output, Count = count };
        pool.For(Chunks(count), ref job);
    }

    public static void AddScaled<T>(CpuWorkerPool pool, T* x, T scale, T* accumulator, long count) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var job = new AxpyJob<T> { X = x, Scale = scale, Accumulator = accumulator, Count = count };
        pool.For(Chunks(count), ref job);
    }

    public static void Dropout<T>(CpuWorkerPool pool, T* x, T* output, long count, double probability, DropoutKey key) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var (hi0, hi1) = key.CounterWords();
        var job = new DropoutJob<T>
        {
            X = x, Output = output, Count = count, Seed = key.Seed, Hi0 = hi0, Hi1 = hi1,
            Threshold = DropoutKey.KeepThreshold(probability), Scale = T.CreateTruncating(1.0 / (1.0 - probability)),
        };
        pool.For(Chunks(count), ref job);
    }


    /// <summary>Σ x (or Σ x² when <paramref name="squares"/>), chunk sums in double, added in order.</summary>
    public static double Reduce<T>(CpuWorkerPool pool, T* x, long count, bool squares, double[] partials) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int chunks = Chunks(count);
        fixed (double* p = partials)
        {
            var job = new ReduceJob<T> { X = x, Count = count, Squares = squares, Partials = p };
            pool.For(chunks, ref job);
        }
        double total = 0;
        for (int i = 0; i < chunks; i++)
        {
            total += partials[i];
        }
        return total;
    }

    private static (long Start, int Length) Range(int index, long count)
    {
        long start = (long)index * Chunk;
        return (start, (int)Math.Min(Chunk, count - start));
    }

    private struct BinaryJob<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* A;
        public T* B;
        public T* Output;
        public long Count;

        public readonly void Execute(int index)
        {
            var (s, n) = Range(index, Count);
            TensorPrimitives.Add(new ReadOnlySpan<T>(A + s, n), new ReadOnlySpan<T>(B + s, n), new Span<T>(Output + s, n));
        }
    }

    private struct AxpyJob<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* X;
        public T Scale;
        public T* Accumulator;
        public long Count;

        public readonly void Execute(int index)
        {
            var (s, n) = Range(index, Count);
            var acc = new Span<T>(Accumulator + s, n);
            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<T>(X + s, n), Scale, acc, acc);
        }
    }

    private struct DropoutJob<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* X;
        public T* Output;
        public long Count;
        public ulong Seed;
        public uint Hi0;
        public uint Hi1;
        public uint Threshold;
        public T Scale;

        public readonly void Execute(int index)
        {
            var (s, n) = Range(index, Count);
            // Chunk starts are multiples of 16, so every run of 16 elements is four whole Philox blocks.
            Span<uint> words = stackalloc uint[16];
            for (long i = s; i < s + n; i += 16)
            {
                Philox.Generate4Blocks((ulong)i >> 2, Hi0, Hi1, Seed, words);
                int count = (int)Math.Min(16, s + n - i);
                if (count == 16 && typeof(T) == typeof(float) && Vector256.IsHardwareAccelerated)
                {
                    ApplyFloat16(i, words);
                    continue;
                }
                for (int j = 0; j < count; j++)
                {
                    Apply(i + j, words[j]);
                }
            }
        }

        /// <summary>Sixteen float elements at once: keep where the word's top 24 bits reach the threshold.</summary>
        private readonly void ApplyFloat16(long i, ReadOnlySpan<uint> words)
        {
            float* x = (float*)X + i, y = (float*)Output + i;
            var threshold = Vector256.Create(Threshold);
            var scale = Vector256.Create(float.CreateTruncating(Scale));
            for (int h = 0; h < 16; h += 8)
            {
                var keep = Vector256.GreaterThanOrEqual(Vector256.Create(words.Slice(h, 8)) >>> 8, threshold).AsSingle();
                Vector256.Store(Vector256.ConditionalSelect(keep, Vector256.Load(x + h) * scale, Vector256<float>.Zero), y + h);
            }
        }

        private readonly void Apply(long i, uint word) => Output[i] = (word >> 8) >= Threshold ? X[i] * Scale : T.Zero;
    }

    private struct ReduceJob<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* X;
        public long Count;
        public bool Squares;
        public double* Partials;

        public readonly void Execute(int index)
        {
            var (s, n) = Range(index, Count);
            var span = new ReadOnlySpan<T>(X + s, n);
            Partials[index] = double.CreateTruncating(Squares ? TensorPrimitives.SumOfSquares(span) : TensorPrimitives.Sum(span));
        }
    }
}
