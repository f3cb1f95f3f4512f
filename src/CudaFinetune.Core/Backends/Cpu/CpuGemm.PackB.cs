using System.Numerics;

namespace CudaFinetune.Backends.Cpu;

/// <summary>The GEMM's packing of op(B) (see <see cref="CpuGemm"/>): once per GEMM, in parallel over panels.</summary>
internal static unsafe partial class CpuGemm
{
    /// <summary>Packs op(B) into panels [panel][k][nr], zero-padding the last panel.</summary>
    private struct PackBJob<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* B;
        public int Ldb;
        public bool TransB;
        public int N;
        public int K;
        public int Nr;
        public T* Packed;
        public int Panels;
        public int PanelsPerTask;

        public readonly void Execute(int index)
        {
            int first = index * PanelsPerTask, last = Math.Min(Panels, first + PanelsPerTask);
            for (int p = first; p < last; p++)
            {
                int j0 = p * Nr, width = Math.Min(Nr, N - j0);
                T* panel = Packed + (long)p * K * Nr;
                if (TransB)
                {
                    // op(B) = Bᵀ: column j of op(B) is B's row j, contiguous over k.
                    for (int j = 0; j < Nr; j++)
                    {
                        T* src = B + (long)(j0 + j) * Ldb;
                        for (int kk = 0; kk < K; kk++)
                        {
                            panel[(long)kk * Nr + j] = j < width ? src[kk] : T.Zero;
                        }
                    }
                    continue;
                }
                T* dst = panel;
                for (int kk = 0; kk < K; kk++, dst += Nr)
                {
                    new ReadOnlySpan<T>(B + (long)kk * Ldb + j0, width).CopyTo(new Span<T>(dst, width));
                    for (int j = width; j < Nr; j++)
                    {
                        dst[j] = T.Zero;
                    }
                }
            }
        }
    }
}
