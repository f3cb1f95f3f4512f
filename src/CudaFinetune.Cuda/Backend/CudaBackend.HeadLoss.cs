using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Backend;

/// <summary>
/// The head fused with the loss over vocabulary chunks (kernels/cross_entropy.cu): logits of all rows for a chunk of the
/// vocabulary at a time, merged into running softmax statistics; then, for the gradients, each chunk's logits again,
/// turned into dlogits in place and multiplied into dX and dHead. GEMMs with all rows as M keep the tensor cores busy,
/// and the only logits buffer is [rows, chunk].
/// </summary>
public sealed partial class CudaBackend
{
    /// <summary>Logits per chunk (rows × columns), at most: 32 MiB in bf16.</summary>
    private const long HeadLossLogitBudget = 1 << 24;

    /// <summary>Vocabulary columns per chunk; 0 picks them from the budget (tests set a small number to get many chunks).</summary>
    internal int HeadLossChunkColumns { get; set; }

    public void LinearCrossEntropy(Tensor x, Tensor head, Tensor targets, Tensor rowLoss, Tensor? dX, Tensor? dHead, double gradientScale)
    {
        Expect(ComputeType, x, head);
        Expect(DType.I32, targets);
        Expect(DType.F32, rowLoss);
        int rows = x.Shape.Rows, hidden = x.Shape.Columns, vocab = head.Shape.Rows;
        if (head.Shape.Columns != hidden || targets.ElementCount != rows || rowLoss.ElementCount != rows)
        {
            throw new ArgumentException($"head loss shapes do not agree: x {x.Shape}, head {head.Shape}, targets {targets.Shape}, row loss {rowLoss.Shape}");
        }
        if (dX is not null)
        {
            Expect(ComputeType, dX);
            SameCount(x, dX);
        }
        if (dHead is not null)
        {
            Expect(AccumulationType, dHead);
            SameCount(head, dHead);
        }
        int columns = HeadLossChunkColumns > 0 ? Math.Min(HeadLossChunkColumns, vocab) : (int)Math.Min(vocab, Math.Max(64, HeadLossLogitBudget / rows / 64 * 64));
        int chunks = (vocab + columns - 1) / columns, element = ComputeType.SizeInBytes();
        bool bf16 = ComputeType == DType.BF16;
        DevicePtr logits = Scratch(Slot.Logits, (long)rows * columns * element);
        DevicePtr rowMax = Scratch(Slot.RowMax, rows * sizeof(float)), rowSum = Scratch(Slot.RowSum, rows * sizeof(float));
        DevicePtr targetLogit = Scratch(Slot.TargetLogit, rows * sizeof(float));
        DevicePtr px = x.Address(), ptargets = targets.Address();

        void Logits(int chunk, out int col0, out int cols, out DevicePtr headChunk)
        {
            col0 = chunk * columns;
            cols = Math.Min(columns, vocab - col0);
            headChunk = head.Address().Offset((long)col0 * hidden * element);
            _gemm.Run(rows, cols, hidden, false, true, 1, px, headChunk, 0, logits, ComputeType, ComputeType);
        }

        int lastCol0 = 0, lastCols = 0;
        DevicePtr lastHead = default;
        for (int c = 0; c < chunks; c++)
        {
            Logits(c, out lastCol0, out lastCols, out lastHead);
            (bf16 ? (ChunkStatsLauncher)CrossEntropyKernels.ChunkStatsBF16 : CrossEntropyKernels.ChunkStatsF32)(
                _device, logits, ptargets, rowMax, rowSum, targetLogit, lastCol0, lastCols, rows, c == 0 ? 1 : 0, 256);
        }
        CrossEntropyKernels.ChunkFinish(_device, rowMax, rowSum, targetLogit, ptargets, rowLoss.Address(), rows, vocab);
        if (dX is null && dHead is null)
        {
            return;
        }
        for (int c = 0; c < chunks; c++)
        {
            int col0 = lastCol0, cols = lastCols;
            DevicePtr headChunk = lastHead;
            if (chunks > 1)
            {
                Logits(c, out col0, out cols, out headChunk); // the last chunk's logits are still in the buffer when there is one
            }
            (bf16 ? (ChunkGradLauncher)CrossEntropyKernels.ChunkGradBF16 : CrossEntropyKernels.ChunkGradF32)(
                _device, logits, ptargets, rowMax, rowSum, (float)gradientScale, col0, cols, rows, 256);
            if (dX is not null)
            {
                _gemm.Run(rows, hidden, cols, false, false, 1, logits, headChunk, c == 0 ? 0 : 1, dX.Address(), ComputeType, ComputeType);
            }
            if (dHead is not null)
            {
                _gemm.Run(cols, hidden, rows, true, false, 1, logits, px, 1, dHead.Address().Offset((long)col0 * hidden * sizeof(float)), ComputeType, AccumulationType);
            }
        }
    }

    private delegate void ChunkStatsLauncher(IKernelLauncher launcher, DevicePtr logits, DevicePtr targets, DevicePtr rowMax, DevicePtr rowSum, DevicePtr targetLogit, int col0, int cols, int rows, int first, int threads);

    private delegate void ChunkGradLauncher(IKernelLauncher launcher, DevicePtr logits, DevicePtr targets, DevicePtr rowMax, DevicePtr rowSum, float scale, int col0, int cols, int rows, int threads);
}
