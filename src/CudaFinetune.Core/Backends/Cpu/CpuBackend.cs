using System.Numerics;
using CudaFinetune.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Backends.Cpu;

/// <summary>
/// The managed CPU backend: SIMD kernels on a fixed worker pool, F32 for training and F64 for
/// verification (the same generic code runs in both). Every op checks its tensors' dtypes, devices
/// and sizes, then hands raw pointers to a kernel in this folder.
/// </summary>
public sealed unsafe class CpuBackend : IBackend
{
    private readonly CpuWorkerPool _pool;
    private readonly object _gemmGate = new();
    private byte[] _gemmScratch = [];
    private double[] _partials = [];
    private readonly RowChunkedHeadLoss _headLoss = new();
    private Tensor? _lowRankScratch;
    private readonly Dictionary<Tensor, Tensor> _lowRankViews = [];

    /// <param name="computeType">F32 (the default) or F64.</param>
    /// <param name="threads">Worker threads, the caller included; defaults to the processor count. Results do not depend on it.</param>
    public CpuBackend(DType computeType = DType.F32, int? threads = null)
    {
        if (!computeType.IsCpuComputeType())
        {
            throw new ArgumentException($"the CPU backend computes in F32 or F64, not {computeType}", nameof(computeType));
        }
        ComputeType = computeType;
        _pool = new CpuWorkerPool(threads ?? Environment.ProcessorCount);
    }

    public string Name => "cpu";

    public Device Device => Device.Cpu;

    public DType ComputeType { get; }

    public DType AccumulationType => ComputeType;

    /// <summary>Threads that run each op.</summary>
    public int Threads => _pool.Threads;

    public Tensor Allocate(DType dtype, Shape shape) => new(new HostStorage(dtype, shape.ElementCount), dtype, shape);

    public void CopyFromHost<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged
    {
        CheckHost(destination);
        source.CopyTo(destination.HostSpan<T>());
    }

    public void CopyToHost<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        CheckHost(source);
        source.HostSpan<T>().CopyTo(destination);
    }

    public void Copy(Tensor source, Tensor destination)
    {
        CheckHost(source);
        CheckHost(destination);
        SameCount(source, destination);
        ElementConvert.Convert((byte*)source.HostAddress, source.DType, (byte*)destination.HostAddress, destination.DType, source.ElementCount);
    }

    public void Fill(Tensor tensor, double value)
    {
        CheckHost(tensor);
        switch (tensor.DType)
        {
            case DType.F32: tensor.HostSpan<float>().Fill((float)value); break;
            case DType.F64: tensor.HostSpan<double>().Fill(value); break;
            case DType.I32: tensor.HostSpan<int>().Fill(checked((int)value)); break;
            case DType.BF16: tensor.HostSpan<ushort>().Fill(HalfPrecision.ToBFloat16((float)value)); break;
            case DType.F16: tensor.HostSpan<ushort>().Fill(HalfPrecision.ToFloat16((float)value)); break;
            default: throw new NotSupportedException($"fill of {tensor.DType}");
        }
    }

    public void MatMul(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, double alpha = 1, double beta = 0)
    {
        CheckCompute(a, b, c);
        var (m, n, k) = GemmSizes.Of(a, transposeA, b, transposeB, c);
        lock (_gemmGate)
        {
            if (c.DType == DType.F32)
            {
                Gemm<float>(a, transposeA, b, transposeB, c, m, n, k, (float)alpha, (float)beta);
            }
            else
            {
                Gemm<double>(a, transposeA, b, transposeB, c, m, n, k, alpha, beta);
            }
        }
    }

    public void AddRmsNormForward(Tensor x, Tensor delta, Tensor weight, double epsilon, Tensor sum, Tensor output, Tensor rstd)
    {
        Add(x, delta, sum);
        RmsNormForward(sum, weight, epsilon, output, rstd);
    }

    public void LowRankMatMul(Tensor a, Tensor b, Tensor low, Tensor lowB, bool transposeB, Tensor c, bool accumulate, double lowDropout = 0, DropoutKey lowDropoutKey = default)
    {
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

    /// <summary>
    /// <see cref="MatMul"/> on raw fp32 row-major matrices in host memory this backend does not own (the
    /// kernel emulator's device memory, which is host memory): c = alpha·op(a)·op(b) + beta·c, leading
    /// dimensions lda, ldb, ldc in elements.
    /// </summary>
    public void MatMul(int m, int n, int k, bool transposeA, bool transposeB, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        lock (_gemmGate)
        {
            fixed (byte* scratch = PackedBScratch(CpuGemm.PackedBBytes<float>(n, k)))
            {
                CpuGemm.Run(_pool, (float*)scratch, transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            }
        }
    }

    private byte[] PackedBScratch(long bytes)
    {
        if (_gemmScratch.Length < bytes)
        {
            _gemmScratch = GC.AllocateArray<byte>(checked((int)Math.Max(bytes, _gemmScratch.Length * 3L / 2)), pinned: true);
        }
        return _gemmScratch;
    }

    private void Gemm<T>(Tensor a, bool ta, Tensor b, bool tb, Tensor c, int m, int n, int k, T alpha, T beta)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        fixed (byte* scratch = PackedBScratch(CpuGemm.PackedBBytes<T>(n, k)))
        {
            CpuGemm.Run(_pool, (T*)scratch, ta, tb, m, n, k, alpha, a.HostPointer<T>(), a.Shape.Columns,
                b.HostPointer<T>(), b.Shape.Columns, beta, c.HostPointer<T>(), c.Shape.Columns);
        }
    }

    public void Add(Tensor a, Tensor b, Tensor output)
    {
        CheckCompute(a, b, output);
        SameCount(a, b);
        SameCount(a, output);
        if (output.DType == DType.F32)
        {
            CpuElementwise.Add(_pool, a.HostPointer<float>(), b.HostPointer<float>(), output.HostPointer<float>(), a.ElementCount);
        }
        else
        {
            CpuElementwise.Add(_pool, a.HostPointer<double>(), b.HostPointer<double>(), output.HostPointer<double>(), a.ElementCount);
        }
    }

    public void AddScaled(Tensor x, double scale, Tensor accumulator)
    {
        CheckCompute(x, accumulator);
        SameCount(x, accumulator);
        if (x.DType == DType.F32)
        {
            CpuElementwise.AddScaled(_pool, x.HostPointer<float>(), (float)scale, accumulator.HostPointer<float>(), x.ElementCount);
        }
        else
        {
            CpuElementwise.AddScaled(_pool, x.HostPointer<double>(), scale, accumulator.HostPointer<double>(), x.ElementCount);
        }
    }

    public void Dropout(Tensor x, Tensor output, double probability, DropoutKey key)
    {
        CheckCompute(x, output);
        SameCount(x, output);
        if (probability is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "dropout probability must be in [0, 1)");
        }
        if (x.DType == DType.F32)
        {
            CpuElementwise.Dropout(_pool, x.HostPointer<float>(), output.HostPointer<float>(), x.ElementCount, probability, key);
        }
        else
        {
            CpuElementwise.Dropout(_pool, x.HostPointer<double>(), output.HostPointer<double>(), x.ElementCount, probability, key);
        }
    }

    public void EmbeddingForward(Tensor table, Tensor tokenIds, Tensor output)
    {
        CheckCompute(table, output);
        CheckIds(tokenIds, output.Shape.Rows);
        SameColumns(table, output);
        if (table.DType == DType.F32)
        {
            CpuEmbedding.Forward(_pool, table.HostPointer<float>(), table.Shape.Rows, tokenIds.HostPointer<int>(), output.HostPointer<float>(), output.Shape.Rows, output.Shape.Columns);
        }
        else
        {
            CpuEmbedding.Forward(_pool, table.HostPointer<double>(), table.Shape.Rows, tokenIds.HostPointer<int>(), output.HostPointer<double>(), output.Shape.Rows, output.Shape.Columns);
        }
    }

    public void EmbeddingBackward(Tensor dOutput, Tensor tokenIds, Tensor dTable)
    {
        CheckCompute(dOutput, dTable);
        CheckIds(tokenIds, dOutput.Shape.Rows);
        SameColumns(dTable, dOutput);
        if (dTable.DType == DType.F32)
        {
            CpuEmbedding.Backward(_pool, dOutput.HostPointer<float>(), tokenIds.HostPointer<int>(), dTable.HostPointer<float>(), dTable.Shape.Rows, dOutput.Shape.Rows, dOutput.Shape.Columns);
        }
        else
        {
            CpuEmbedding.Backward(_pool, dOutput.HostPointer<double>(), tokenIds.HostPointer<int>(), dTable.HostPointer<double>(), dTable.Shape.Rows, dOutput.Shape.Rows, dOutput.Shape.Columns);
        }
    }

    public void RmsNormForward(Tensor x, Tensor weight, double epsilon, Tensor output, Tensor rstd)
    {
        CheckCompute(x, weight, output);
        CheckCompute(rstd, x);
        SameCount(x, output);
        CheckLength(weight, x.Shape.Columns, "norm weight");
        CheckLength(rstd, x.Shape.Rows, "rstd");
        if (x.DType == DType.F32)
        {
            CpuRmsNorm.Forward(_pool, x.HostPointer<float>(), weight.HostPointer<float>(), (float)epsilon, output.HostPointer<float>(), rstd.HostPointer<float>(), x.Shape.Rows, x.Shape.Columns);
        }
        else
        {
            CpuRmsNorm.Forward(_pool, x.HostPointer<double>(), weight.HostPointer<double>(), epsilon, output.HostPointer<double>(), rstd.HostPointer<double>(), x.Shape.Rows, x.Shape.Columns);
        }
    }

    public void RmsNormBackward(Tensor dOutput, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor? dWeight)
    {
        CheckCompute(dOutput, x, weight);
        CheckCompute(rstd, dx, x);
        SameCount(x, dOutput);
        SameCount(x, dx);
        if (dWeight is not null)
        {
            CheckCompute(dWeight, x);
            CheckLength(dWeight, x.Shape.Columns, "norm weight gradient");
        }
        if (x.DType == DType.F32)
        {
            CpuRmsNorm.Backward(_pool, dOutput.HostPointer<float>(), x.HostPointer<float>(), weight.HostPointer<float>(), rstd.HostPointer<float>(), dx.HostPointer<float>(),
                dWeight is null ? null : dWeight.HostPointer<float>(), x.Shape.Rows, x.Shape.Columns);
        }
        else
        {
            CpuRmsNorm.Backward(_pool, dOutput.HostPointer<double>(), x.HostPointer<double>(), weight.HostPointer<double>(), rstd.HostPointer<double>(), dx.HostPointer<double>(),
                dWeight is null ? null : dWeight.HostPointer<double>(), x.Shape.Rows, x.Shape.Columns);
        }
    }

    public void Rope(Tensor x, int heads, Tensor cos, Tensor sin, int seqLen, bool inverse)
    {
        CheckCompute(x, cos, sin);
        int headDim = x.Shape.Columns / heads;
        if (headDim * heads != x.Shape.Columns || headDim % 2 != 0)
        {
            throw new ArgumentException($"rope: {x.Shape.Columns} columns do not split into {heads} heads of even size");
        }
        if (x.Shape.Rows % seqLen != 0 || cos.ElementCount < (long)seqLen * headDim / 2 || sin.ElementCount != cos.ElementCount)
        {
            throw new ArgumentException($"rope: tables {cos.Shape} do not cover {x.Shape.Rows} tokens of sequence length {seqLen} and head size {headDim}");
        }
        if (x.DType == DType.F32)
        {
            CpuRope.Apply(_pool, x.HostPointer<float>(), x.Shape.Rows, heads, headDim, cos.HostPointer<float>(), sin.HostPointer<float>(), seqLen, inverse);
        }
        else
        {
            CpuRope.Apply(_pool, x.HostPointer<double>(), x.Shape.Rows, heads, headDim, cos.HostPointer<double>(), sin.HostPointer<double>(), seqLen, inverse);
        }
    }

    public void AttentionForward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, in AttentionShape shape)
    {
        CheckAttention(q, k, v, output, logSumExp, shape);
        if (q.DType == DType.F32)
        {
            CpuAttention.Forward(_pool, q.HostPointer<float>(), k.HostPointer<float>(), v.HostPointer<float>(), output.HostPointer<float>(), logSumExp.HostPointer<float>(), shape);
        }
        else
        {
            CpuAttention.Forward(_pool, q.HostPointer<double>(), k.HostPointer<double>(), v.HostPointer<double>(), output.HostPointer<double>(), logSumExp.HostPointer<double>(), shape);
        }
    }

    public void AttentionBackward(Tensor dOutput, Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp, Tensor dq, Tensor dk, Tensor dv, in AttentionShape shape)
    {
        CheckAttention(q, k, v, output, logSumExp, shape);
        CheckCompute(dOutput, dq, q);
        CheckCompute(dk, dv, k);
        SameCount(dOutput, output);
        SameCount(dq, q);
        SameCount(dk, k);
        SameCount(dv, v);
        if (q.DType == DType.F32)
        {
            CpuAttention.Backward(_pool, dOutput.HostPointer<float>(), q.HostPointer<float>(), k.HostPointer<float>(), v.HostPointer<float>(), output.HostPointer<float>(), logSumExp.HostPointer<float>(),
                dq.HostPointer<float>(), dk.HostPointer<float>(), dv.HostPointer<float>(), shape);
        }
        else
        {
            CpuAttention.Backward(_pool, dOutput.HostPointer<double>(), q.HostPointer<double>(), k.HostPointer<double>(), v.HostPointer<double>(), output.HostPointer<double>(), logSumExp.HostPointer<double>(),
                dq.HostPointer<double>(), dk.HostPointer<double>(), dv.HostPointer<double>(), shape);
        }
    }

    public void SwiGluForward(Tensor gate, Tensor up, Tensor output)
    {
        CheckCompute(gate, up, output);
        SameCount(gate, up);
        SameCount(gate, output);
        if (gate.DType == DType.F32)
        {
            CpuSwiGlu.Forward(_pool, gate.HostPointer<float>(), up.HostPointer<float>(), output.HostPointer<float>(), gate.ElementCount);
        }
        else
        {
            CpuSwiGlu.Forward(_pool, gate.HostPointer<double>(), up.HostPointer<double>(), output.HostPointer<double>(), gate.ElementCount);
        }
    }

    public void SwiGluBackward(Tensor dOutput, Tensor gate, Tensor up, Tensor dGate, Tensor dUp)
    {
        CheckCompute(dOutput, gate, up);
        CheckCompute(dGate, dUp, gate);
        SameCount(gate, up);
        SameCount(gate, dOutput);
        SameCount(gate, dGate);
        SameCount(gate, dUp);
        if (gate.DType == DType.F32)
        {
            CpuSwiGlu.Backward(_pool, dOutput.HostPointer<float>(), gate.HostPointer<float>(), up.HostPointer<float>(), dGate.HostPointer<float>(), dUp.HostPointer<float>(), gate.ElementCount);
        }
        else
        {
            CpuSwiGlu.Backward(_pool, dOutput.HostPointer<double>(), gate.HostPointer<double>(), up.HostPointer<double>(), dGate.HostPointer<double>(), dUp.HostPointer<double>(), gate.ElementCount);
        }
    }

    /// <summary>A chunk of rows at a time (<see cref="RowChunkedHeadLoss"/>).</summary>
    public void LinearCrossEntropy(Tensor x, Tensor head, Tensor targets, Tensor rowLoss, Tensor? dX, Tensor? dHead, double gradientScale)
        => _headLoss.Run(this, x, head, targets, rowLoss, dX, dHead, gradientScale);

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor rowLoss, Tensor? dLogits, double gradientScale)
    {
        CheckCompute(logits, rowLoss);
        CheckIds(targets, logits.Shape.Rows);
        CheckLength(rowLoss, logits.Shape.Rows, "row loss");
        if (dLogits is not null)
        {
            CheckCompute(dLogits, logits);
            SameCount(dLogits, logits);
        }
        if (logits.DType == DType.F32)
        {
            CpuCrossEntropy.Run(_pool, logits.HostPointer<float>(), targets.HostPointer<int>(), rowLoss.HostPointer<float>(),
                dLogits is null ? null : dLogits.HostPointer<float>(), (float)gradientScale, logits.Shape.Rows, logits.Shape.Columns);
        }
        else
        {
            CpuCrossEntropy.Run(_pool, logits.HostPointer<double>(), targets.HostPointer<int>(), rowLoss.HostPointer<double>(),
                dLogits is null ? null : dLogits.HostPointer<double>(), gradientScale, logits.Shape.Rows, logits.Shape.Columns);
        }
    }

    public void AdamWUpdate(Tensor parameter, Tensor gradient, Tensor firstMoment, Tensor secondMoment, in AdamWStep update, Tensor? roundedCopy = null)
    {
        CheckCompute(parameter, gradient, firstMoment);
        CheckCompute(secondMoment, parameter);
        SameCount(parameter, gradient);
        SameCount(parameter, firstMoment);
        SameCount(parameter, secondMoment);
        if (parameter.DType == DType.F32)
        {
            CpuAdamW.Update(_pool, parameter.HostPointer<float>(), gradient.HostPointer<float>(), firstMoment.HostPointer<float>(), secondMoment.HostPointer<float>(), parameter.ElementCount, update);
        }
        else
        {
            CpuAdamW.Update(_pool, parameter.HostPointer<double>(), gradient.HostPointer<double>(), firstMoment.HostPointer<double>(), secondMoment.HostPointer<double>(), parameter.ElementCount, update);
        }
        if (roundedCopy is not null)
        {
            Copy(parameter, roundedCopy);
        }
    }

    public void AttentionDecode(Tensor q, Tensor kCache, Tensor vCache, Tensor output, int past, in AttentionShape shape)
    {
        shape.Validate();
        CheckCompute(q, kCache, vCache);
        CheckCompute(output, q);
        int rows = q.Shape.Rows, kvWidth = shape.KvHeads * shape.HeadDim;
        if (shape.Batch != 1 || q.Shape.Columns != shape.QueryHeads * shape.HeadDim || output.ElementCount != q.ElementCount
            || kCache.Shape.Columns != kvWidth || vCache.Shape.Columns != kvWidth || past < 0 || past + rows > kCache.Shape.Rows || vCache.Shape.Rows != kCache.Shape.Rows)
        {
            throw new ArgumentException($"attention decode: q {q.Shape}, caches {kCache.Shape}/{vCache.Shape}, out {output.Shape}, past {past} do not match {shape}");
        }
        if (q.DType == DType.F32)
        {
            CpuAttentionDecode.Run(_pool, q.HostPointer<float>(), kCache.HostPointer<float>(), vCache.HostPointer<float>(), output.HostPointer<float>(), rows, past, shape);
        }
        else
        {
            CpuAttentionDecode.Run(_pool, q.HostPointer<double>(), kCache.HostPointer<double>(), vCache.HostPointer<double>(), output.HostPointer<double>(), rows, past, shape);
        }
    }

    public double Sum(Tensor x) => Reduce(x, squares: false);

    public double SumOfSquares(Tensor x) => Reduce(x, squares: true);

    private double Reduce(Tensor x, bool squares)
    {
        CheckCompute(x, x);
        lock (_gemmGate)
        {
            int chunks = CpuElementwise.Chunks(x.ElementCount);
            if (_partials.Length < chunks)
            {
                _partials = new double[chunks];
            }
            return x.DType == DType.F32
                ? CpuElementwise.Reduce(_pool, x.HostPointer<float>(), x.ElementCount, squares, _partials)
                : CpuElementwise.Reduce(_pool, x.HostPointer<double>(), x.ElementCount, squares, _partials);
        }
    }

    public void Dispose()
    {
        _lowRankScratch?.Dispose();
        _headLoss.Dispose();
        _pool.Dispose();
    }

    // ---- checks ---------------------------------------------------------------------------

    private static void CheckHost(Tensor t)
    {
        if (t.Storage is not HostStorage)
        {
            throw new ArgumentException($"the CPU backend cannot use a tensor on {t.Device}");
        }
    }

    private static void CheckCompute(Tensor a, Tensor b, Tensor? c = null)
    {
        CheckHost(a);
        CheckHost(b);
        if (c is not null)
        {
            CheckHost(c);
        }
        if (!a.DType.IsCpuComputeType() || a.DType != b.DType || (c is not null && c.DType != a.DType))
        {
            throw new ArgumentException($"CPU ops need F32 or F64 operands of one dtype; got {a.DType}, {b.DType}{(c is null ? "" : ", " + c.DType)}");
        }
    }

    private static void CheckIds(Tensor ids, int rows)
    {
        CheckHost(ids);
        if (ids.DType != DType.I32 || ids.ElementCount != rows)
        {
            throw new ArgumentException($"expected {rows} I32 ids, got {ids}");
        }
    }

    private static void SameCount(Tensor a, Tensor b)
    {
        if (a.ElementCount != b.ElementCount)
        {
            throw new ArgumentException($"element counts differ: {a.Shape} vs {b.Shape}");
        }
    }

    private static void SameColumns(Tensor a, Tensor b)
    {
        if (a.Shape.Columns != b.Shape.Columns)
        {
            throw new ArgumentException($"row lengths differ: {a.Shape} vs {b.Shape}");
        }
    }

    private static void CheckLength(Tensor t, int length, string what)
    {
        if (t.ElementCount != length)
        {
            throw new ArgumentException($"{what} should have {length} elements, has {t.Shape}");
        }
    }

    private static void CheckAttention(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, in AttentionShape shape)
    {
        shape.Validate();
        CheckCompute(q, k, v);
        CheckCompute(output, lse, q);
        long tokens = shape.Tokens;
        if (q.ElementCount != tokens * shape.QueryHeads * shape.HeadDim || output.ElementCount != q.ElementCount
            || k.ElementCount != tokens * shape.KvHeads * shape.HeadDim || v.ElementCount != k.ElementCount
            || lse.ElementCount != tokens * shape.QueryHeads)
        {
            throw new ArgumentException($"attention tensors q {q.Shape}, k {k.Shape}, v {v.Shape}, out {output.Shape}, lse {lse.Shape} do not match {shape}");
        }
    }
}
