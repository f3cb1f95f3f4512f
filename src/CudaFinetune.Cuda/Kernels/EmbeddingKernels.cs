namespace CudaFinetune.Cuda.Kernels;

/// <summary>Launchers of kernels/embedding.cu. Ids must be inside the vocabulary (the caller checks them on the host).</summary>
public static unsafe class EmbeddingKernels
{
    private const string Module = "embedding";

    /// <summary>output[n, :] = table[ids[n], :].</summary>
    [KernelEntry(Module, "embedding_forward_f32")]
    public static void ForwardF32(IKernelLauncher launcher, DevicePtr table, DevicePtr ids, DevicePtr output, int tokens, int dim)
        => Launch(launcher, "embedding_forward_f32", table, ids, output, tokens, dim, GridStride.For((long)tokens * dim));

    [KernelEntry(Module, "embedding_forward_bf16")]
    public static void ForwardBF16(IKernelLauncher launcher, DevicePtr table, DevicePtr ids, DevicePtr output, int tokens, int dim)
        => Launch(launcher, "embedding_forward_bf16", table, ids, output, tokens, dim, GridStride.For((long)tokens * dim));

    /// <summary>dTable (fp32)[ids[n], :] += dOutput[n, :], in token order.</summary>
    [KernelEntry(Module, "embedding_backward_f32")]
    public static void BackwardF32(IKernelLauncher launcher, DevicePtr dOutput, DevicePtr ids, DevicePtr dTable, int tokens, int dim)
        => Launch(launcher, "embedding_backward_f32", dOutput, ids, dTable, tokens, dim, PerColumn(dim));

    [KernelEntry(Module, "embedding_backward_bf16")]
    public static void BackwardBF16(IKernelLauncher launcher, DevicePtr dOutput, DevicePtr ids, DevicePtr dTable, int tokens, int dim)
        => Launch(launcher, "embedding_backward_bf16", dOutput, ids, dTable, tokens, dim, PerColumn(dim));

    private static LaunchShape PerColumn(int dim) => new((dim + 127) / 128, 128);

    private static void Launch(IKernelLauncher launcher, string entry, DevicePtr a, DevicePtr ids, DevicePtr b, int tokens, int dim, LaunchShape shape)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[5];
        args[0] = &a;
        args[1] = &ids;
        args[2] = &b;
        args[3] = &tokens;
        args[4] = &dim;
        launcher.Launch(Module, entry, shape, args);
    }
}
