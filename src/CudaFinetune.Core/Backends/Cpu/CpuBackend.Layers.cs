using System.Numerics;
using CudaFinetune.Tensors;

namespace CudaFinetune.Backends.Cpu;

/// <summary>The model's layer ops: embedding, RMSNorm, rotary position embedding and the cross-entropy losses.</summary>
public sealed unsafe partial class CpuBackend
{
    public void EmbeddingForward(Tensor table, Tensor tokenIds, Tensor output)
    {
        var dtype = _checks.FloatType(table, output);
        _checks.Expect(DType.I32, tokenIds);
        var (tokens, dim) = OpChecks.Embedding(tokenIds, table, output);
        Compute(dtype, new EmbeddingForwardOp(_pool, table, tokenIds, output, tokens, dim));
    }

    public void EmbeddingBackward(Tensor dOutput, Tensor tokenIds, Tensor dTable)
    {
        var dtype = _checks.FloatType(dOutput, dTable);
        _checks.Expect(DType.I32, tokenIds);
        var (tokens, dim) = OpChecks.Embedding(tokenIds, dTable, dOutput);
        Compute(dtype, new EmbeddingBackwardOp(_pool, dOutput, tokenIds, dTable, tokens, dim));
    }

    public void RmsNormForward(Tensor x, Tensor weight, double epsilon, Tensor output, Tensor rstd)
    {
        var dtype = _checks.FloatType(x, weight, output, rstd);
        var (rows, cols) = OpChecks.RowOp(x, weight, output, rstd);
        Compute(dtype, new RmsNormForwardOp(_pool, x, weight, epsilon, output, rstd, rows, cols));
    }

    public void AddRmsNormForward(Tensor x, Tensor delta, Tensor weight, double epsilon, Tensor sum, Tensor output, Tensor rstd)
    {
        Add(x, delta, sum);
        RmsNormForward(sum, weight, epsilon, output, rstd);
    }

    public void RmsNormBackward(Tensor dOutput, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor? dWeight)
    {
        var dtype = _checks.FloatType(dOutput, x, weight, rstd, dx);
        var (rows, cols) = OpChecks.RowOp(x, weight, dOutput, rstd);
        OpChecks.SameCount(x, dx);
        if (dWeight is not null)
        {
            _checks.Expect(dtype, dWeight);
            OpChecks.SameCount(weight, dWeight);
        }
        Compute(dtype, new RmsNormBackwardOp(_pool, dOutput, x, weight, rstd, dx, dWeight, rows, cols));
    }

    public void Rope(Tensor x, int heads, Tensor cos, Tensor sin, int seqLen, bool inverse)
    {
        var dtype = _checks.FloatType(x, cos, sin);
        int headDim = OpChecks.Rope(x, heads, cos, sin, seqLen);
        Compute(dtype, new RopeOp(_pool, x, heads, headDim, cos, sin, seqLen, inverse));
    }

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor rowLoss, Tensor? dLogits, double gradientScale)
    {
        var dtype = _checks.FloatType(logits, rowLoss);
        _checks.Expect(DType.I32, targets);
        if (dLogits is not null)
        {
            _checks.Expect(dtype, dLogits);
        }
        var (rows, vocab) = OpChecks.CrossEntropy(logits, targets, rowLoss, dLogits);
        Compute(dtype, new CrossEntropyOp(_pool, logits, targets, rowLoss, dLogits, gradientScale, rows, vocab));
    }

    /// <summary>A chunk of rows at a time (<see cref="RowChunkedHeadLoss"/>).</summary>
    public void LinearCrossEntropy(Tensor x, Tensor head, Tensor targets, Tensor rowLoss, Tensor? dX, Tensor? dHead, double gradientScale)
        => _headLoss.Run(this, x, head, targets, rowLoss, dX, dHead, gradientScale);

    private readonly struct EmbeddingForwardOp(CpuWorkerPool pool, Tensor table, Tensor ids, Tensor output, int tokens, int dim) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuEmbedding.Forward(pool, table.HostPointer<T>(), table.Shape.Rows, ids.HostPointer<int>(), output.HostPointer<T>(), tokens, dim);
    }

    private readonly struct EmbeddingBackwardOp(CpuWorkerPool pool, Tensor dOutput, Tensor ids, Tensor dTable, int tokens, int dim) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuEmbedding.Backward(pool, dOutput.HostPointer<T>(), ids.HostPointer<int>(), dTable.HostPointer<T>(), dTable.Shape.Rows, tokens, dim);
    }

    private readonly struct RmsNormForwardOp(CpuWorkerPool pool, Tensor x, Tensor weight, double epsilon, Tensor output, Tensor rstd, int rows, int cols) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuRmsNorm.Forward(pool, x.HostPointer<T>(), weight.HostPointer<T>(), T.CreateTruncating(epsilon), output.HostPointer<T>(), rstd.HostPointer<T>(), rows, cols);
    }

    private readonly struct RmsNormBackwardOp(CpuWorkerPool pool, Tensor dOutput, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor? dWeight, int rows, int cols) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuRmsNorm.Backward(pool, dOutput.HostPointer<T>(), x.HostPointer<T>(), weight.HostPointer<T>(), rstd.HostPointer<T>(), dx.HostPointer<T>(),
                dWeight is null ? null : dWeight.HostPointer<T>(), rows, cols);
    }

    private readonly struct RopeOp(CpuWorkerPool pool, Tensor x, int heads, int headDim, Tensor cos, Tensor sin, int seqLen, bool inverse) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuRope.Apply(pool, x.HostPointer<T>(), x.Shape.Rows, heads, headDim, cos.HostPointer<T>(), sin.HostPointer<T>(), seqLen, inverse);
    }

    private readonly struct CrossEntropyOp(CpuWorkerPool pool, Tensor logits, Tensor targets, Tensor rowLoss, Tensor? dLogits, double gradientScale, int rows, int vocab) : IFloatOp
    {
        public void Run<T>() where T : unmanaged, IBinaryFloatingPointIeee754<T>
            => CpuCrossEntropy.Run(pool, logits.HostPointer<T>(), targets.HostPointer<int>(), rowLoss.HostPointer<T>(),
                dLogits is null ? null : dLogits.HostPointer<T>(), T.CreateTruncating(gradientScale), rows, vocab);
    }
}
