using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/embedding.cu: rows of a table gathered by token id and the gradient scattered back, fp32 or bf16 (the
/// <see cref="DType"/> argument). Ids must be inside the vocabulary (the caller checks them on the host).
/// </summary>
public static unsafe class EmbeddingKernels
{
    private const string Module = "embedding";
    private static readonly DTypeEntries ForwardEntries = new(Module, "embedding_forward");
    private static readonly DTypeEntries BackwardEntries = new(Module, "embedding_backward");

    /// <summary>output[n, :] = table[ids[n], :].</summary>
    [KernelEntry(Module, "embedding_forward_f32")]
    [KernelEntry(Module, "embedding_forward_bf16")]
    public static void Forward(IKernelLauncher launcher, DType dtype, DevicePtr table, DevicePtr ids, DevicePtr output, int tokens, int dim)
        => Launch(launcher, ForwardEntries, dtype, table, ids, output, tokens, dim, GridStride.For((long)tokens * dim));

    /// <summary>dTable (fp32)[ids[n], :] += dOutput[n, :] (dtype elements), in token order.</summary>
    [KernelEntry(Module, "embedding_backward_f32")]
    [KernelEntry(Module, "embedding_backward_bf16")]
    public static void Backward(IKernelLauncher launcher, DType dtype, DevicePtr dOutput, DevicePtr ids, DevicePtr dTable, int tokens, int dim)
        => Launch(launcher, BackwardEntries, dtype, dOutput, ids, dTable, tokens, dim, new LaunchShape((dim + 127) / 128, 128));

    private static void Launch(IKernelLauncher launcher, DTypeEntries entries, DType dtype, DevicePtr a, DevicePtr ids, DevicePtr b, int tokens, int dim, LaunchShape shape)
    {
        void** args = stackalloc void*[5];
        args[0] = &a;
        args[1] = &ids;
        args[2] = &b;
        args[3] = &tokens;
        args[4] = &dim;
        entries.Launch(launcher, dtype, shape, args);
    }
}
