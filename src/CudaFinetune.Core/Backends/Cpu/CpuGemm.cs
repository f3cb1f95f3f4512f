using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// Cache-blocked, multi-threaded GEMM: C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C, for
/// float and double, row-major with leading dimensions.
/// <para>
/// op(B) is packed once into NR-wide column panels (K contiguous per panel). C is cut into fixed
/// MC × NT task tiles; each task packs its KC × MC slices of op(A) into MR-row panels and runs a
/// register-blocked MR × NR micro-kernel (two SIMD vectors wide, FMA). Every element of C is
/// summed over K in the same order whatever the thread count, so results are bitwise
/// reproducible.
/// </para>
/// </summary>
internal static unsafe partial class CpuGemm
{
    internal const int MR = 6;
    private const int KC = 256;
    private const int MC = 16 * MR;
    private const int NT = 512;

    /// <summary>Bytes of scratch the packed op(B) needs.</summary>
    internal static long PackedBBytes<T>(int n, int k) where T : unmanaged
        => (long)RoundUp(n, Nr<T>()) * k * Unsafe.SizeOf<T>();

    /// <summary>Bytes of per-task scratch the packed op(A) needs.</summary>
    internal static long PackedABytes<T>() where T : unmanaged => (long)MC * KC * Unsafe.SizeOf<T>();

    /// <summary>Micro-tile width in elements: two of the widest accelerated vectors, or of 256-bit ones when <paramref name="narrow"/>.</summary>
    internal static int Nr<T>(bool narrow = false) where T : unmanaged
        => Vector512.IsHardwareAccelerated && !narrow ? 2 * Vector512<T>.Count : 2 * Vector256<T>.Count;

    /// <summary>
    /// Runs the GEMM on <paramref name="pool"/>, or inline on the calling thread when it is null
    /// (for kernels that call GEMMs from inside their own parallel tasks). <paramref name="packedB"/>
    /// must hold <see cref="PackedBBytes{T}"/> bytes. <paramref name="narrow"/> runs the 256-bit micro-kernel where 512-bit
    /// vectors are accelerated too: each element of C is summed over K in the same order at either width, so the two
    /// give the same bits (a test holds them to it; the x86-64-v3 and v4 builds differ there only in speed).
    /// </summary>
    public static void Run<T>(CpuWorkerPool? pool, T* packedB, bool transA, bool transB, int m, int n, int k,
        T alpha, T* a, int lda, T* b, int ldb, T beta, T* c, int ldc, bool narrow = false)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (m == 0 || n == 0)
        {
            return;
        }
        if (k == 0 || alpha == T.Zero)
        {
            ScaleC(m, n, beta, c, ldc);
            return;
        }
        pool?.Reserve(ScratchSlot.GemmPackA, PackedABytes<T>());
        int nr = Nr<T>(narrow);
        int panels = (n + nr - 1) / nr;
        var pack = new PackBJob<T>
        {
            B = b, Ldb = ldb, TransB = transB, N = n, K = k, Nr = nr, Packed = packedB,
            PanelsPerTask = Math.Max(1, 64 / (k / 64 + 1)), Panels = panels,
        };
        For(pool, (panels + pack.PanelsPerTask - 1) / pack.PanelsPerTask, ref pack);

        var compute = new ComputeJob<T>
        {
            A = a, Lda = lda, TransA = transA, PackedB = packedB, C = c, Ldc = ldc,
            M = m, N = n, K = k, Nr = nr, Alpha = alpha, Beta = beta,
            MTiles = (m + MC - 1) / MC, NTiles = (n + NT - 1) / NT,
        };
        For(pool, compute.MTiles * compute.NTiles, ref compute);
    }

    private static void For<TJob>(CpuWorkerPool? pool, int count, ref TJob job) where TJob : struct, IParallelJob
    {
        if (pool is not null)
        {
            pool.For(count, ref job);
            return;
        }
        for (int i = 0; i < count; i++)
        {
            job.Execute(i);
        }
    }

    private static void ScaleC<T>(int m, int n, T beta, T* c, int ldc) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        for (int i = 0; i < m; i++)
        {
            var row = new Span<T>(c + (long)i * ldc, n);
            if (beta == T.Zero)
            {
                row.Clear();
            }
            else
            {
                System.Numerics.Tensors.TensorPrimitives.Multiply(row, beta, row);
            }
        }
    }

    private static int RoundUp(int x, int to) => (x + to - 1) / to * to;

    /// <summary>One MC × NT tile of C over all of K.</summary>
    private struct ComputeJob<T> : IParallelJob where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T* A;
        public int Lda;
        public bool TransA;
        public T* PackedB;
        public T* C;
        public int Ldc;
        public int M;
        public int N;
        public int K;
        public int Nr;
        public T Alpha;
        public T Beta;
        public int MTiles;
        public int NTiles;

        public readonly void Execute(int index)
        {
            int i0 = index / NTiles * MC, j0 = index % NTiles * NT;
            int mLen = Math.Min(MC, M - i0), nLen = Math.Min(NT, N - j0);
            T* packedA = WorkerScratch.Current.Get<T>(ScratchSlot.GemmPackA, MC * KC);
            T* tile = stackalloc T[MR * 2 * Vector512<T>.Count];
            for (int k0 = 0; k0 < K; k0 += KC)
            {
                int kc = Math.Min(KC, K - k0);
                PackA(packedA, i0, mLen, k0, kc);
                bool first = k0 == 0;
                for (int jj = 0; jj < nLen; jj += Nr)
                {
                    int j = j0 + jj, nr = Math.Min(Nr, nLen - jj);
                    T* bPanel = PackedB + (long)(j / Nr) * K * Nr + (long)k0 * Nr;
                    for (int ii = 0; ii < mLen; ii += MR)
                    {
                        int mr = Math.Min(MR, mLen - ii);
                        T* aPanel = packedA + (long)ii * kc;
                        T* c = C + (long)(i0 + ii) * Ldc + j;
                        if (mr == MR && nr == Nr)
                        {
                            // A whole micro-tile merges into C straight from the registers.
                            var merge = new TileMerge<T>(c, Ldc, Alpha, Beta, first);
                            RunMicroKernel(kc, aPanel, bPanel, merge, Nr);
                            continue;
                        }
                        // An edge tile lands in scratch first, then only its valid part merges.
                        RunMicroKernel(kc, aPanel, bPanel, new TileMerge<T>(tile, Nr, T.One, T.Zero, first: true), Nr);
                        MergeTile(tile, c, mr, nr, first);
                    }
                }
            }
        }

        /// <summary>Packs rows [i0, i0+mLen) × k [k0, k0+kc) of op(A) as [panel][k][MR], zero-padded.</summary>
        private readonly void PackA(T* dst, int i0, int mLen, int k0, int kc)
        {
            if (TransA)
            {
                // op(A) = Aᵀ: row k of A holds the block's mLen values of that k contiguously; read each row once,
                // front to back, and deal its values out to the MR-row panels (the same layout, so the same sums).
                for (int kk = 0; kk < kc; kk++)
                {
                    T* src = A + (long)(k0 + kk) * Lda + i0;
                    for (int ii = 0; ii < mLen; ii += MR)
                    {
                        int rows = Math.Min(MR, mLen - ii);
                        T* p = dst + (long)ii * kc + kk * MR;
                        for (int r = 0; r < rows; r++)
                        {
                            p[r] = src[ii + r];
                        }
                        for (int r = rows; r < MR; r++)
                        {
                            p[r] = T.Zero;
                        }
                    }
                }
                return;
            }
            for (int ii = 0; ii < mLen; ii += MR)
            {
                int rows = Math.Min(MR, mLen - ii);
                T* panel = dst + (long)ii * kc;
                for (int r = 0; r < MR; r++)
                {
                    if (r >= rows)
                    {
                        for (int kk = 0; kk < kc; kk++)
                        {
                            panel[kk * MR + r] = T.Zero;
                        }
                        continue;
                    }
                    T* src = A + (long)(i0 + ii + r) * Lda + k0;
                    for (int kk = 0; kk < kc; kk++)
                    {
                        panel[kk * MR + r] = src[kk];
                    }
                }
            }
        }

        private static void RunMicroKernel(int kc, T* aPanel, T* bPanel, in TileMerge<T> merge, int nr)
        {
            if (Vector512.IsHardwareAccelerated && nr == 2 * Vector512<T>.Count)
            {
                MicroKernel<Vector512Ops<T>, Vector512<T>, T>(kc, aPanel, bPanel, merge);
            }
            else
            {
                MicroKernel<Vector256Ops<T>, Vector256<T>, T>(kc, aPanel, bPanel, merge);
            }
        }

        /// <summary>C = alpha·tile + beta·C on the first K block (C ignored when beta is 0), else C += alpha·tile.</summary>
        private readonly void MergeTile(T* tile, T* c, int rows, int cols, bool first)
        {
            for (int r = 0; r < rows; r++)
            {
                T* src = tile + r * Nr;
                T* dst = c + (long)r * Ldc;
                for (int j = 0; j < cols; j++)
                {
                    T value = Alpha * src[j];
                    dst[j] = first ? (Beta == T.Zero ? value : value + Beta * dst[j]) : dst[j] + value;
                }
            }
        }
    }

    /// <summary>
    /// Where a micro-kernel's MR × NR sums go, and how: C = alpha·sum + beta·C on the first K block (C not read when beta
    /// is 0), C += alpha·sum after it. A multiply then an add, never fused, so a vector lane rounds exactly as the scalar
    /// edge-tile merge does.
    /// </summary>
    private readonly struct TileMerge<T>(T* c, int ldc, T alpha, T beta, bool first) where T : unmanaged
    {
        public readonly T* C = c;
        public readonly int Ldc = ldc;
        public readonly T Alpha = alpha;
        public readonly T Beta = beta;
        public readonly bool First = first;
    }

    /// <summary>Σ_k aPanel[k][r] · bPanel[k][:] for the MR rows r, NR = two vectors of <typeparamref name="TVec"/>, merged into C.</summary>
    private static void MicroKernel<TOps, TVec, T>(int kc, T* a, T* b, in TileMerge<T> merge)
        where TOps : struct, IVectorOps<TVec, T>
        where TVec : struct
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int w = TOps.Count;
        TVec c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        TVec c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++, a += MR, b += 2 * w)
        {
            var b0 = TOps.Load(b);
            var b1 = TOps.Load(b + w);
            var x = TOps.Broadcast(a[0]); c00 = TOps.MultiplyAdd(x, b0, c00); c01 = TOps.MultiplyAdd(x, b1, c01);
            x = TOps.Broadcast(a[1]); c10 = TOps.MultiplyAdd(x, b0, c10); c11 = TOps.MultiplyAdd(x, b1, c11);
            x = TOps.Broadcast(a[2]); c20 = TOps.MultiplyAdd(x, b0, c20); c21 = TOps.MultiplyAdd(x, b1, c21);
            x = TOps.Broadcast(a[3]); c30 = TOps.MultiplyAdd(x, b0, c30); c31 = TOps.MultiplyAdd(x, b1, c31);
            x = TOps.Broadcast(a[4]); c40 = TOps.MultiplyAdd(x, b0, c40); c41 = TOps.MultiplyAdd(x, b1, c41);
            x = TOps.Broadcast(a[5]); c50 = TOps.MultiplyAdd(x, b0, c50); c51 = TOps.MultiplyAdd(x, b1, c51);
        }
        T* c = merge.C;
        long ldc = merge.Ldc;
        MergeRow<TOps, TVec, T>(c00, c01, c, merge);
        MergeRow<TOps, TVec, T>(c10, c11, c + ldc, merge);
        MergeRow<TOps, TVec, T>(c20, c21, c + 2 * ldc, merge);
        MergeRow<TOps, TVec, T>(c30, c31, c + 3 * ldc, merge);
        MergeRow<TOps, TVec, T>(c40, c41, c + 4 * ldc, merge);
        MergeRow<TOps, TVec, T>(c50, c51, c + 5 * ldc, merge);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MergeRow<TOps, TVec, T>(TVec lo, TVec hi, T* c, in TileMerge<T> merge)
        where TOps : struct, IVectorOps<TVec, T>
        where TVec : struct
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int w = TOps.Count;
        if (merge.Alpha != T.One)
        {
            // alpha·x is x exactly when alpha is 1, so skipping the multiply changes no bit.
            var alpha = TOps.Broadcast(merge.Alpha);
            lo = TOps.Multiply(alpha, lo);
            hi = TOps.Multiply(alpha, hi);
        }
        if (!merge.First)
        {
            lo = TOps.Add(TOps.Load(c), lo);
            hi = TOps.Add(TOps.Load(c + w), hi);
        }
        else if (merge.Beta != T.Zero)
        {
            var beta = TOps.Broadcast(merge.Beta);
            lo = TOps.Add(lo, TOps.Multiply(beta, TOps.Load(c)));
            hi = TOps.Add(hi, TOps.Multiply(beta, TOps.Load(c + w)));
        }
        TOps.Store(lo, c);
        TOps.Store(hi, c + w);
    }

    /// <summary>The few vector operations the micro-kernel needs, so one kernel serves both vector widths.</summary>
    private interface IVectorOps<TVec, T> where T : unmanaged
    {
        static abstract int Count { get; }
        static abstract TVec Load(T* p);
        static abstract TVec Broadcast(T value);
        static abstract TVec MultiplyAdd(TVec a, TVec b, TVec c);
        static abstract TVec Multiply(TVec a, TVec b);
        static abstract TVec Add(TVec a, TVec b);
        static abstract void Store(TVec v, T* p);
    }

    private readonly struct Vector512Ops<T> : IVectorOps<Vector512<T>, T> where T : unmanaged
    {
        public static int Count => Vector512<T>.Count;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<T> Load(T* p) => Vector512.Load(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<T> Broadcast(T value) => Vector512.Create(value);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Store(Vector512<T> v, T* p) => v.Store(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<T> Multiply(Vector512<T> a, Vector512<T> b) => a * b;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<T> Add(Vector512<T> a, Vector512<T> b) => a + b;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<T> MultiplyAdd(Vector512<T> a, Vector512<T> b, Vector512<T> c)
        {
            if (Avx512F.IsSupported && typeof(T) == typeof(float))
            {
                return Avx512F.FusedMultiplyAdd(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>();
            }
            if (Avx512F.IsSupported && typeof(T) == typeof(double))
            {
                return Avx512F.FusedMultiplyAdd(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
            }
            return a * b + c;
        }
    }

    private readonly struct Vector256Ops<T> : IVectorOps<Vector256<T>, T> where T : unmanaged
    {
        public static int Count => Vector256<T>.Count;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> Load(T* p) => Vector256.Load(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> Broadcast(T value) => Vector256.Create(value);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Store(Vector256<T> v, T* p) => v.Store(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> Multiply(Vector256<T> a, Vector256<T> b) => a * b;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> Add(Vector256<T> a, Vector256<T> b) => a + b;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> MultiplyAdd(Vector256<T> a, Vector256<T> b, Vector256<T> c)
        {
            if (Fma.IsSupported && typeof(T) == typeof(float))
            {
                return Fma.MultiplyAdd(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>();
            }
            if (Fma.IsSupported && typeof(T) == typeof(double))
            {
                return Fma.MultiplyAdd(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
            }
            return a * b + c;
        }
    }
}
