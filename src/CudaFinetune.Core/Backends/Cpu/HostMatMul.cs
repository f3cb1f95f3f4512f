namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// The CPU backend's fp32 GEMM on raw row-major matrices in host memory that no backend owns — the kernel emulator's
/// device memory is host memory, so the cuda backend's emulated GEMMs run here: c = alpha·op(a)·op(b) + beta·c with
/// leading dimensions lda, ldb, ldc in elements. It has its own worker threads and packing scratch; one call at a time.
/// </summary>
public sealed unsafe class HostMatMul : IDisposable
{
    private readonly CpuWorkerPool _pool;
    private readonly object _gate = new();
    private byte[] _packedB = [];

    /// <param name="threads">worker threads (default: one per processor)</param>
    public HostMatMul(int? threads = null) => _pool = new CpuWorkerPool(threads ?? Environment.ProcessorCount);

    public void Run(int m, int n, int k, bool transposeA, bool transposeB, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        lock (_gate)
        {
            long bytes = CpuGemm.PackedBBytes<float>(n, k);
            if (_packedB.Length < bytes)
            {
                _packedB = GC.AllocateArray<byte>(checked((int)bytes), pinned: true);
            }
            fixed (byte* scratch = _packedB)
            {
                CpuGemm.Run(_pool, (float*)scratch, transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            }
        }
    }

    public void Dispose() => _pool.Dispose();
}
