using CudaFinetune.Backends;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Backend;

/// <summary>
/// The head fused with the loss over vocabulary chunks (kernels/cross_entropy.cu): logits of all rows for a chunk of the
/// vocabulary at a time, merged into running softmax statistics. For dX alone (a frozen head) that same pass turns each
/// chunk into e^(x − running max) and adds its product with the head into an fp32 accumulator (rows rescaled when their
/// maximum moves), and dX is finished from it once: each chunk's logits are computed once. With dHead, which needs every
/// chunk's final probabilities, a second pass computes each chunk's logits again, turns them into dlogits in place and
/// multiplies them into dHead and an fp32 dX. Either way dX is summed over the chunks in fp32 and rounded to the compute type
/// once. GEMMs with all rows as M keep the tensor cores busy, and the only logits buffer is [rows, chunk].
/// </summary>
public sealed partial class CudaBackend
{
    /// <summary>Logits per chunk (rows × columns), at most: 32 MiB in bf16.</summary>
    private const long HeadLossLogitBudget = 1 << 24;

    /// <summary>Vocabulary columns per chunk; 0 picks them from the budget (tests set a small number to get many chunks).</summary>
    internal int HeadLossChunkColumns { get; set; }

    public void LinearCrossEntropy(Tensor x, Tensor head, Tensor targets, Tensor rowLoss, Tensor? dX, Tensor? dHead, double gradientScale)
    {
        _checks.Expect(ComputeType, x, head);
        _checks.Expect(DType.I32, targets);
        _checks.Expect(DType.F32, rowLoss);
        if (dX is not null)
        {
            _checks.Expect(ComputeType, dX);
        }
        if (dHead is not null)
        {
            _checks.Expect(AccumulationType, dHead);
        }
        var (rows, hidden, vocab) = OpChecks.HeadLoss(x, head, targets, rowLoss, dX, dHead);
        int columns = HeadLossChunkColumns > 0 ? Math.Min(HeadLossChunkColumns, vocab) : (int)Math.Min(vocab, Math.Max(64, HeadLossLogitBudget / rows / 64 * 64));
        int chunks = (vocab + columns - 1) / columns, element = ComputeType.SizeInBytes();
        DevicePtr logits = Scratch(Slot.Logits, (long)rows * columns * element);
        DevicePtr rowMax = Scratch(Slot.RowMax, rows * sizeof(float)), rowSum = Scratch(Slot.RowSum, rows * sizeof(float));
        DevicePtr targetLogit = Scratch(Slot.TargetLogit, rows * sizeof(float));
        DevicePtr px = x.Address(), ptargets = targets.Address();
        // dX summed over the chunks in fp32: dX itself in fp32 compute, else an accumulator rounded into dX at the end.
        DevicePtr acc = dX is null ? DevicePtr.Null : ComputeType == DType.F32 ? dX.Address() : Scratch(Slot.DXAccumulator, (long)rows * hidden * sizeof(float));
        bool onePass = dX is not null && dHead is null;
        DevicePtr rescale = onePass ? Scratch(Slot.RowRescale, rows * sizeof(float)) : DevicePtr.Null;

        (int Col0, int Cols, DevicePtr Head) Chunk(int c)
            => (c * columns, Math.Min(columns, vocab - c * columns), head.Address().Offset((long)c * columns * hidden * element));
        void Logits((int Col0, int Cols, DevicePtr Head) chunk)
            => _gemm.Run(rows, chunk.Cols, hidden, false, true, 1, px, chunk.Head, 0, logits, ComputeType, ComputeType);

        for (int c = 0; c < chunks; c++)
        {
            var chunk = Chunk(c);
            Logits(chunk);
            if (onePass)
            {
                CrossEntropyKernels.ChunkExp(_device, ComputeType, logits, ptargets, rowMax, rowSum, targetLogit, rescale, chunk.Col0, chunk.Cols, rows, c == 0 ? 1 : 0, 256);
                if (c > 0)
                {
                    CrossEntropyKernels.RescaleRows(_device, acc, rescale, rows, hidden, 256);
                }
                _gemm.Run(rows, hidden, chunk.Cols, false, false, 1, logits, chunk.Head, c == 0 ? 0 : 1, acc, ComputeType, DType.F32);
            }
            else
            {
                CrossEntropyKernels.ChunkStats(_device, ComputeType, logits, ptargets, rowMax, rowSum, targetLogit, chunk.Col0, chunk.Cols, rows, c == 0 ? 1 : 0, 256);
            }
        }
        CrossEntropyKernels.ChunkFinish(_device, rowMax, rowSum, targetLogit, ptargets, rowLoss.Address(), rows, vocab);
        if (onePass)
        {
            CrossEntropyKernels.DxFinish(_device, ComputeType, acc, head.Address(), ptargets, rowSum, dX!.Address(), (float)gradientScale, rows, hidden, vocab, 256);
            return;
        }
        if (dX is null && dHead is null)
        {
            return;
        }
        for (int c = 0; c < chunks; c++)
        {
            var chunk = Chunk(c);
            if (chunks > 1)
            {
                Logits(chunk); // with one chunk, its logits are still in the buffer
            }
            CrossEntropyKernels.ChunkGrad(_device, ComputeType, logits, ptargets, rowMax, rowSum, (float)gradientScale, chunk.Col0, chunk.Cols, rows, 256);
            if (dX is not null)
            {
                _gemm.Run(rows, hidden, chunk.Cols, false, false, 1, logits, chunk.Head, c == 0 ? 0 : 1, acc, ComputeType, DType.F32);
            }
            if (dHead is not null)
            {
                _gemm.Run(chunk.Cols, hidden, rows, true, false, 1, logits, px, 1, dHead.Address().Offset((long)chunk.Col0 * hidden * sizeof(float)), ComputeType, AccumulationType);
            }
        }
        if (dX is not null && ComputeType != DType.F32)
        {
            ElementwiseKernels.CastF32ToBF16(_device, acc, dX.Address(), dX.ElementCount);
        }
    }
}
