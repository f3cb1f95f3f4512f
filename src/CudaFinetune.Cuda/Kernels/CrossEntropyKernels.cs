using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/cross_entropy.cu: softmax cross-entropy per row of fp32 or bf16 logits (the <see cref="DType"/>
/// argument), one block per row; dLogits may be null (loss only) or the logits themselves. The chunk entries serve the head
/// fused with the loss over vocabulary chunks (see the file's header): stats per chunk, finish once, grad per chunk.
/// </summary>
public static unsafe class CrossEntropyKernels
{
    private const string Module = "cross_entropy";
    private static readonly DTypeEntries LossEntries = new(Module, "cross_entropy");
    private static readonly DTypeEntries ChunkStatsEntries = new(Module, "cross_entropy_chunk_stats");
    private static readonly DTypeEntries ChunkGradEntries = new(Module, "cross_entropy_chunk_grad");

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
}
