using CudaFinetune.Backends;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Backend;

/// <summary>Linear algebra: GEMMs (cuBLASLt, or the CPU's on the emulator) and the LoRA projection of kernels/lora.cu.</summary>
public sealed partial class CudaBackend
{
    public void MatMul(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, double alpha = 1, double beta = 0)
    {
        _checks.Expect(ComputeType, a, b);
        _checks.Expect(c.DType == ComputeType ? ComputeType : AccumulationType, c);
        var (m, n, k) = GemmSizes.Of(a, transposeA, b, transposeB, c);
        _gemm.Run(m, n, k, transposeA, transposeB, (float)alpha, a.Address(), b.Address(), (float)beta, c.Address(), a.DType, c.DType);
    }

    /// <summary>
    /// kernels/lora.cu when the tensors are bf16 with 16-byte rows (a forward overwriting c, without dropout; an input gradient
    /// with or without); otherwise GEMMs (and the dropout kernel through a scratch buffer).
    /// </summary>
    public void LowRankMatMul(Tensor a, Tensor b, Tensor low, Tensor lowB, bool transposeB, Tensor c, bool accumulate, double lowDropout = 0, DropoutKey lowDropoutKey = default)
    {
        _checks.Expect(ComputeType, a, b, low, lowB, c);
        var (tokens, n, k, r) = OpChecks.LowRank(a, b, low, lowB, transposeB, c);
        DevicePtr pa = a.Address(), pb = b.Address(), plow = low.Address(), plowB = lowB.Address(), pc = c.Address();
        var mask = DropoutMask.Of(lowDropout, lowDropoutKey);
        bool fused = ComputeType == DType.BF16 && LoraKernels.Fits([n, k, r], [pa, pb, plow, plowB, pc]) && !(transposeB && (accumulate || lowDropout > 0));
        if (!fused)
        {
            MatMul(a, false, b, transposeB, c, beta: accumulate ? 1 : 0);
            if (lowDropout == 0)
            {
                MatMul(low, false, lowB, transposeB, c, beta: 1);
                return;
            }
            DevicePtr scratch = Scratch(Slot.LowRank, c.ElementCount * c.DType.SizeInBytes());
            _gemm.Run(c.Shape.Rows, c.Shape.Columns, r, false, transposeB, 1, plow, plowB, 0, scratch, ComputeType, c.DType);
            Dropout(c.DType, scratch, scratch, c.ElementCount, lowDropout, lowDropoutKey);
            ElementwiseKernels.AddScaled(_device, c.DType, scratch, 1, pc, c.ElementCount);
        }
        else if (transposeB)
        {
            LoraKernels.ForwardBF16(_device, pa, pb, plow, plowB, pc, tokens, n, k, r);
        }
        else
        {
            LoraKernels.BackwardDxBF16(_device, pa, pb, plow, plowB, pc, tokens, n, k, r, accumulate ? 1 : 0,
                lowDropoutKey.Seed, mask.Hi0, mask.Hi1, mask.Threshold, mask.Scale);
        }
    }
}
