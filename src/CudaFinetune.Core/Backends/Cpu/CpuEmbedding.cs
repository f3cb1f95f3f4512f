using System.Numerics;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// Token embedding lookup and its backward. The backward is split by column blocks, each summing
/// its columns over the tokens in order: deterministic, with no atomics and no scratch.
/// </summary>
internal static unsafe class CpuEmbedding
{
    private const int ColumnBlock = 64;

    public static void Forward<T>(CpuWorkerPool pool, T* table, int vocab, int* ids, T* output, int tokens, int cols)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        CheckIds(ids, tokens, vocab);
        var job = new ForwardJob<T> { Table = table, Ids = ids, Output = output, Tokens = tokens, Cols = cols };
        pool.For(tokens, ref job);
    }

    public static void Backward<T>(CpuWorkerPool pool, T* dOutput, int* ids, T* dTable, int vocab, int tokens, int cols)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        CheckIds(ids, tokens, vocab);
        var job = new BackwardJob<T> { DOutput = dOutput, Ids = ids, DTable = dTable, Tokens = tokens, Cols = cols };
        pool.For((cols + ColumnBlock - 1) / ColumnBlock, ref job);
    }

    private static void CheckIds(int* ids, int tokens, int vocab)
    {
        for (int n = 0; n < tokens; n++)
        {
            if ((uint)ids[n] >= (uint)vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), ids[n], $"token id at position {n} is outside the vocabulary of {vocab}");
            }
        }
    }

    private struct ForwardJob<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* Table, Output;
        public int* Ids;
        public int Tokens, Cols;

        public readonly void Execute(int n) =>
            new ReadOnlySpan<T>(Table + (long)Ids[n] * Cols, Cols).CopyTo(new Span<T>(Output + (long)n * Cols, Cols));
    }

    private struct BackwardJob<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* DOutput, DTable;
        public int* Ids;
        public int Tokens, Cols;

        public readonly void Execute(int index)
        {
            int c0 = index * ColumnBlock, width = Math.Min(ColumnBlock, Cols - c0);
            for (int n = 0; n < Tokens; n++)
            {
                T* src = DOutput + (long)n * Cols + c0;
                T* dst = DTable + (long)Ids[n] * Cols + c0;
                for (int c = 0; c < width; c++)
                {
                    dst[c] += src[c];
                }
            }
        }
    }
}
