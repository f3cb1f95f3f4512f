namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/cross_entropy.cu: one block per row; dLogits may be null (loss only) or the logits themselves.
/// The chunk entries serve the head fused with the loss over vocabulary chunks (see the file's header): stats per chunk,
/// finish once, grad per chunk.
/// </summary>
public static unsafe class CrossEntropyKernels
{
    private const string Module = "cross_entropy";

    [KernelEntry(Module, "cross_entropy_f32")]
    public static void F32(IKernelLauncher launcher, DevicePtr logits, DevicePtr targets, DevicePtr rowLoss, DevicePtr dLogits, float scale, int rows, int vocab, int threads = 256)
        => Launch(launcher, "cross_entropy_f32", logits, targets, rowLoss, dLogits, scale, rows, vocab, threads);

    [KernelEntry(Module, "cross_entropy_bf16")]
    public static void BF16(IKernelLauncher launcher, DevicePtr logits, DevicePtr targets, DevicePtr rowLoss, DevicePtr dLogits, float scale, int rows, int vocab, int threads = 256)
        => Launch(launcher, "cross_entropy_bf16", logits, targets, rowLoss, dLogits, scale, rows, vocab, threads);

    [KernelEntry(Module, "cross_entropy_chunk_stats_f32")]
    public static void ChunkStatsF32(IKernelLauncher launcher, DevicePtr logits, DevicePtr targets, DevicePtr rowMax, DevicePtr rowSum, DevicePtr targetLogit, int col0, int cols, int rows, int first, int threads = 256)
        => ChunkStats(launcher, "cross_entropy_chunk_stats_f32", logits, targets, rowMax, rowSum, targetLogit, col0, cols, rows, first, threads);

    [KernelEntry(Module, "cross_entropy_chunk_stats_bf16")]
    public static void ChunkStatsBF16(IKernelLauncher launcher, DevicePtr logits, DevicePtr targets, DevicePtr rowMax, DevicePtr rowSum, DevicePtr targetLogit, int col0, int cols, int rows, int first, int threads = 256)
        => ChunkStats(launcher, "cross_entropy_chunk_stats_bf16", logits, targets, rowMax, rowSum, targetLogit, col0, cols, rows, first, threads);

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
    public static void ChunkGradF32(IKernelLauncher launcher, DevicePtr logits, DevicePtr targets, DevicePtr rowMax, DevicePtr rowSum, float scale, int col0, int cols, int rows, int threads = 256)
        => ChunkGrad(launcher, "cross_entropy_chunk_grad_f32", logits, targets, rowMax, rowSum, scale, col0, cols, rows, threads);

    [KernelEntry(Module, "cross_entropy_chunk_grad_bf16")]
    public static void ChunkGradBF16(IKernelLauncher launcher, DevicePtr logits, DevicePtr targets, DevicePtr rowMax, DevicePtr rowSum, float scale, int col0, int cols, int rows, int threads = 256)
        => ChunkGrad(launcher, "cross_entropy_chunk_grad_bf16", logits, targets, rowMax, rowSum, scale, col0, cols, rows, threads);

    private static void ChunkStats(IKernelLauncher launcher, string entry, DevicePtr logits, DevicePtr targets, DevicePtr rowMax, DevicePtr rowSum, DevicePtr targetLogit,
        int col0, int cols, int rows, int first, int threads)
    {
        ArgumentNullException.ThrowIfNull(launcher);
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
        launcher.Launch(Module, entry, new LaunchShape(rows, threads), args);
    }

    private static void ChunkGrad(IKernelLauncher launcher, string entry, DevicePtr logits, DevicePtr targets, DevicePtr rowMax, DevicePtr rowSum, float scale,
        int col0, int cols, int rows, int threads)
    {
        ArgumentNullException.ThrowIfNull(launcher);
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
        launcher.Launch(Module, entry, new LaunchShape(rows, threads), args);
    }

    private static void Launch(IKernelLauncher launcher, string entry, DevicePtr logits, DevicePtr targets, DevicePtr rowLoss, DevicePtr dLogits, float scale, int rows, int vocab, int threads)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        BlockThreads.Check(threads);
        void** args = stackalloc void*[7];
        args[0] = &logits;
        args[1] = &targets;
        args[2] = &rowLoss;
        args[3] = &dLogits;
        args[4] = &scale;
        args[5] = &rows;
        args[6] = &vocab;
        launcher.Launch(Module, entry, new LaunchShape(rows, threads), args);
    }
}
