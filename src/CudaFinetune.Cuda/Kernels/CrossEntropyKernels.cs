namespace CudaFinetune.Cuda.Kernels;

/// <summary>Launchers of kernels/cross_entropy.cu: one block per row; dLogits may be null (loss only) or the logits themselves.</summary>
public static unsafe class CrossEntropyKernels
{
    private const string Module = "cross_entropy";

    [KernelEntry(Module, "cross_entropy_f32")]
    public static void F32(IKernelLauncher launcher, DevicePtr logits, DevicePtr targets, DevicePtr rowLoss, DevicePtr dLogits, float scale, int rows, int vocab, int threads = 256)
        => Launch(launcher, "cross_entropy_f32", logits, targets, rowLoss, dLogits, scale, rows, vocab, threads);

    [KernelEntry(Module, "cross_entropy_bf16")]
    public static void BF16(IKernelLauncher launcher, DevicePtr logits, DevicePtr targets, DevicePtr rowLoss, DevicePtr dLogits, float scale, int rows, int vocab, int threads = 256)
        => Launch(launcher, "cross_entropy_bf16", logits, targets, rowLoss, dLogits, scale, rows, vocab, threads);

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
