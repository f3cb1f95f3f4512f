using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/cross_entropy.cu: softmax cross-entropy per row of fp32 or bf16 logits (the <see cref="DType"/>
/// argument), one block per row; dLogits may be null (loss only) or the logits themselves. The chunk entries serve the head
/// fused with the loss over vocabulary chunks (see the file's header): stats per chunk, finish once, grad per chunk; or, for
/// dX alone, exp per chunk with the accumulator's rows rescaled, and dX finished once from the fp32 accumulator.
/// </summary>
public static unsafe class CrossEntropyKernels
{
    private const string Module = "cross_entropy";
    private static readonly DTypeEntries LossEntries = new(Module, "cross_entropy");
    private static readonly DTypeEntries ChunkStatsEntries = new(Module, "cross_entropy_chunk_stats");
    private static readonly DTypeEntries ChunkGradEntries = new(Module, "cross_entropy_chunk_grad");
    private static readonly DTypeEntries ChunkExpEntries = new(Module, "cross_entropy_chunk_exp");
    private static readonly DTypeEntries DxFinishEntries = new(Module, "cross_entropy_dx_finish");

    [KernelEntry(Module, "cross_entropy_f32")]
    [KernelEntry(Module, "cross_entropy_bf16")]
    public static void Loss(IKernelLauncher launcher, DType dtype, DevicePtr logits, DevicePtr targets, DevicePtr rowLoss, DevicePtr dLogits, float scale, int rows, int vocab, int threads = 256)
    {
        BlockThreads.Check(threads);
        void** args = stackalloc void*[7];
        args[0] = &logits;
        args[1] = &targets;
        args[2] = &rowLoss;
        args[3] = &dLogits;
        args[4] = &scale;
        args[5] = &rows;
        args[6] = &vocab;
        LossEntries.Launch(launcher, dtype, new LaunchShape(rows, threads), args);
    }

    [KernelEntry(Module, "cross_entropy_chunk_stats_f32")]
    [KernelEntry(Module, "cross_entropy_chunk_stats_bf16")]
    public static void ChunkStats(IKernelLauncher launcher, DType dtype, DevicePtr logits, DevicePtr targets, DevicePtr rowMax, DevicePtr rowSum, DevicePtr targetLogit,
        int col0, int cols, int rows, int first, int threads = 256)
    {
        BlockThreads.Check(threads);
        void** args = stackalloc void*[9];
        args[0] = &logits;
        args[1] = &targets;
        args[2] = &rowMax;
        args[3] = &rowSum;
        args[4] = &targetLogit;
        args[5] = &col0;
        args[6] = &cols;
        args[7] = &rows;
        args[8] = &first;
        ChunkStatsEntries.Launch(launcher, dtype, new LaunchShape(rows, threads), args);
    }

    [KernelEntry(Module, "cross_entropy_chunk_finish")]
    public static void ChunkFinish(IKernelLauncher launcher, DevicePtr rowMax, DevicePtr rowSum, DevicePtr targetLogit, DevicePtr targets, DevicePtr rowLoss, int rows, int vocab)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[7];
        args[0] = &rowMax;
        args[1] = &rowSum;
        args[2] = &targetLogit;
        args[3] = &targets;
        args[4] = &rowLoss;
        args[5] = &rows;
        args[6] = &vocab;
        launcher.Launch(Module, "cross_entropy_chunk_finish", new LaunchShape((rows + 255) / 256, 256), args);
    }

    [KernelEntry(Module, "cross_entropy_chunk_grad_f32")]
    [KernelEntry(Module, "cross_entropy_chunk_grad_bf16")]
    public static void ChunkGrad(IKernelLauncher launcher, DType dtype, DevicePtr logits, DevicePtr targets, DevicePtr rowMax, DevicePtr rowSum, float scale,
        int col0, int cols, int rows, int threads = 256)
    {
        BlockThreads.Check(threads);
        void** args = stackalloc void*[8];
        args[0] = &logits;
        args[1] = &targets;
        args[2] = &rowMax;
        args[3] = &rowSum;
        args[4] = &scale;
        args[5] = &col0;
        args[6] = &cols;
        args[7] = &rows;
        ChunkGradEntries.Launch(launcher, dtype, new LaunchShape(rows, threads), args);
    }

    /// <summary>
    /// As <see cref="ChunkStats"/>, then the chunk overwritten with e^(x − m′) (m′ the merged maximum; 0 for ignored rows) and
    /// rescale[row] = e^(m − m′), the factor the dX accumulator's row needs before this chunk is added (1 for the first chunk).
    /// </summary>
    [KernelEntry(Module, "cross_entropy_chunk_exp_f32")]
    [KernelEntry(Module, "cross_entropy_chunk_exp_bf16")]
    public static void ChunkExp(IKernelLauncher launcher, DType dtype, DevicePtr logits, DevicePtr targets, DevicePtr rowMax, DevicePtr rowSum, DevicePtr targetLogit,
        DevicePtr rescale, int col0, int cols, int rows, int first, int threads = 256)
    {
        BlockThreads.Check(threads);
        void** args = stackalloc void*[10];
        args[0] = &logits;
        args[1] = &targets;
        args[2] = &rowMax;
        args[3] = &rowSum;
        args[4] = &targetLogit;
        args[5] = &rescale;
        args[6] = &col0;
        args[7] = &cols;
        args[8] = &rows;
        args[9] = &first;
        ChunkExpEntries.Launch(launcher, dtype, new LaunchShape(rows, threads), args);
    }

    /// <summary>acc [rows, cols] (fp32) row r ·= rescale[r]; rows with factor 1 are left alone.</summary>
    [KernelEntry(Module, "cross_entropy_rescale_rows")]
    public static void RescaleRows(IKernelLauncher launcher, DevicePtr acc, DevicePtr rescale, int rows, int cols, int threads = 256)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        BlockThreads.Check(threads);
        void** args = stackalloc void*[4];
        args[0] = &acc;
        args[1] = &rescale;
        args[2] = &rows;
        args[3] = &cols;
        launcher.Launch(Module, "cross_entropy_rescale_rows", new LaunchShape(rows, threads), args);
    }

    /// <summary>
    /// dx [rows, hidden] (dtype) = acc (fp32) · scale / rowSum − scale · head[target] (head [vocab, hidden], dtype): the dX of the
    /// one-pass head loss, rounded once; 0 for ignored rows. dx may be acc itself when dtype is F32.
    /// </summary>
    [KernelEntry(Module, "cross_entropy_dx_finish_f32")]
    [KernelEntry(Module, "cross_entropy_dx_finish_bf16")]
    public static void DxFinish(IKernelLauncher launcher, DType dtype, DevicePtr acc, DevicePtr head, DevicePtr targets, DevicePtr rowSum, DevicePtr dx, float scale,
        int rows, int hidden, int vocab, int threads = 256)
    {
        BlockThreads.Check(threads);
        void** args = stackalloc void*[9];
        args[0] = &acc;
        args[1] = &head;
        args[2] = &targets;
        args[3] = &rowSum;
        args[4] = &dx;
        args[5] = &scale;
        args[6] = &rows;
        args[7] = &hidden;
        args[8] = &vocab;
        DxFinishEntries.Launch(launcher, dtype, new LaunchShape(rows, threads), args);
    }
}
