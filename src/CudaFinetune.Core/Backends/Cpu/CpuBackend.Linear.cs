using System.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Backends.Cpu;

/// <summary>Linear algebra: GEMMs (<see cref="CpuGemm"/>, one at a time, sharing the packed-B scratch) and the LoRA projection.</summary>
public sealed unsafe partial class CpuBackend
{
    public void MatMul(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, double alpha = 1, double beta = 0)
    {
        var dtype = _checks.FloatType(a, b, c);
        var (m, n, k) = GemmSizes.Of(a, transposeA, b, transposeB, c);
        lock (_gemmGate)
        {
            Compute(dtype, new GemmOp(this, a, transposeA, b, transposeB, c, m, n, k, alpha, beta));
        }
    }

    public void LowRankMatMul(Tensor a, Tensor b, Tensor low, Tensor lowB, bool transposeB, Tensor c, bool accumulate, double lowDropout = 0, DropoutKey lowDropoutKey = default)
    {
        OpChecks.LowRank(a, b, low, lowB, transposeB, c);
        MatMul(a, false, b, transposeB, c, beta: accumulate ? 1 : 0);
        if (lowDropout <= 0)
        {
            MatMul(low, false, lowB, transposeB, c, beta: 1);
            return;
        }
        // The adapter's product goes through the mask on its own, in a scratch view shaped like c (views kept per c).
        Tensor scratch = LowRankScratch(c);
        MatMul(low, false, lowB, transposeB, scratch);
        Dropout(scratch, scratch, lowDropout, lowDropoutKey);
        AddScaled(scratch, 1, c);
    }

    /// <summary>A view shaped like <paramref name="c"/> over one growing buffer; made once per output tensor, so warm steps allocate nothing.</summary>
    private Tensor LowRankScratch(Tensor c)
    {
        if (_lowRankViews.TryGetValue(c, out var view))
        {
            return view;
        }
        if (_lowRankScratch is null || _lowRankScratch.ElementCount < c.ElementCount || _lowRankScratch.DType != c.DType)
        {
            _lowRankViews.Clear();
            _lowRankScratch?.Dispose();
            _lowRankScratch = Allocate(c.DType, new Shape(checked((int)c.ElementCount)));
        }
        view = new Tensor(_lowRankScratch.Storage, c.DType, c.Shape, 0, ownsStorage: false);
        _lowRankViews.Add(c, view);
        return view;
    }

    private byte[] PackedBScratch(long bytes)
    {
        if (_gemmScratch.Length < bytes)
        {
            _gemmScratch = GC.AllocateArray<byte>(checked((int)Math.Max(bytes, _gemmScratch.Length * 3L / 2)), pinned: true);
        }
        return _gemmScratch;
    }

    /// <summary>c = alpha·op(a)·op(b) + beta·c on tensors; the caller holds the GEMM lock.</summary>
    private readonly struct GemmOp(CpuBackend backend, Tensor a, bool ta, Tensor b, bool tb, Tensor c, int m, int n, int k, double alpha, double beta) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
        {
            fixed (byte* scratch = backend.PackedBScratch(CpuGemm.PackedBBytes<T>(n, k)))
            {
                CpuGemm.Run(backend._pool, (T*)scratch, ta, tb, m, n, k, T.CreateTruncating(alpha), a.HostPointer<T>(), a.Shape.Columns,
                    b.HostPointer<T>(), b.Shape.Columns, T.CreateTruncating(beta), c.HostPointer<T>(), c.Shape.Columns);
            }
        }
    }
}
