using CudaFinetune.Backends;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Backend;

/// <summary>The model's layer ops: embedding, RMSNorm, rotary position embedding and the cross-entropy loss on logits.</summary>
public sealed partial class CudaBackend
{
    public void EmbeddingForward(Tensor table, Tensor tokenIds, Tensor output)
    {
        var dtype = _checks.FloatType(table, output);
        _checks.Expect(DType.I32, tokenIds);
        var (tokens, dim) = OpChecks.Embedding(tokenIds, table, output);
        EmbeddingKernels.Forward(_device, dtype, table.Address(), tokenIds.Address(), output.Address(), tokens, dim);
    }

    public void EmbeddingBackward(Tensor dOutput, Tensor tokenIds, Tensor dTable)
    {
        var dtype = _checks.FloatType(dOutput);
        _checks.Expect(DType.I32, tokenIds);
        _checks.Expect(DType.F32, dTable);
        var (tokens, dim) = OpChecks.Embedding(tokenIds, dTable, dOutput);
        EmbeddingKernels.Backward(_device, dtype, dOutput.Address(), tokenIds.Address(), dTable.Address(), tokens, dim);
    }

    public void RmsNormForward(Tensor x, Tensor weight, double epsilon, Tensor output, Tensor rstd)
    {
        var dtype = _checks.FloatType(x, weight, output);
        _checks.Expect(DType.F32, rstd);
        var (rows, cols) = OpChecks.RowOp(x, weight, output, rstd);
        RmsNormKernels.Forward(_device, dtype, x.Address(), weight.Address(), output.Address(), rstd.Address(), rows, cols, (float)epsilon, 256);
    }

    public void AddRmsNormForward(Tensor x, Tensor delta, Tensor weight, double epsilon, Tensor sum, Tensor output, Tensor rstd)
    {
        var dtype = _checks.FloatType(x, delta, weight, sum, output);
        _checks.Expect(DType.F32, rstd);
        var (rows, cols) = OpChecks.RowOp(x, weight, output, rstd);
        OpChecks.SameCount(x, delta, sum);
        RmsNormKernels.ResidualForward(_device, dtype, x.Address(), delta.Address(), sum.Address(), weight.Address(), output.Address(), rstd.Address(), rows, cols, (float)epsilon, 256);
    }

    public void RmsNormBackward(Tensor dOutput, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor? dWeight)
    {
        var dtype = _checks.FloatType(dOutput, x, weight, dx);
        _checks.Expect(DType.F32, rstd);
        var (rows, cols) = OpChecks.RowOp(x, weight, dOutput, rstd);
        OpChecks.SameCount(x, dx);
        RmsNormKernels.BackwardDx(_device, dtype, dOutput.Address(), x.Address(), weight.Address(), rstd.Address(), dx.Address(), rows, cols, 256);
        if (dWeight is not null)
        {
            _checks.Expect(DType.F32, dWeight);
            OpChecks.SameCount(weight, dWeight);
            RmsNormKernels.BackwardDWeight(_device, dtype, dOutput.Address(), x.Address(), rstd.Address(), dWeight.Address(), rows, cols, 256);
        }
    }

    public void Rope(Tensor x, int heads, Tensor cos, Tensor sin, int seqLen, bool inverse)
    {
        var dtype = _checks.FloatType(x);
        _checks.Expect(DType.F32, cos, sin);
        int headDim = OpChecks.Rope(x, heads, cos, sin, seqLen);
        RopeKernels.Apply(_device, dtype, x.Address(), cos.Address(), sin.Address(), x.Shape.Rows, heads, headDim, seqLen, inverse ? 1 : 0);
    }

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor rowLoss, Tensor? dLogits, double gradientScale)
    {
        var dtype = _checks.FloatType(logits);
        _checks.Expect(DType.I32, targets);
        _checks.Expect(DType.F32, rowLoss);
        if (dLogits is not null)
        {
            _checks.Expect(dtype, dLogits);
        }
        var (rows, vocab) = OpChecks.CrossEntropy(logits, targets, rowLoss, dLogits);
        CrossEntropyKernels.Loss(_device, dtype, logits.Address(), targets.Address(), rowLoss.Address(), dLogits.AddressOrNull(), (float)gradientScale, rows, vocab, 256);
    }
}
