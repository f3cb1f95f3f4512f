using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/embedding.cu: rows of a table gathered by token id and the gradient scattered back, fp32 or bf16 (the
/// <see cref="DType"/> argument). Ids must be inside the vocabulary (the caller checks them on the host). The backward runs in
/// two stages (<see cref="Backward"/>), its links between tokens of the same id in scratch from the device's caching allocator.
/// </summary>
public static unsafe class EmbeddingKernels
{
    private const string Module = "embedding";
    private const int LinkThreads = 256;
    private const int BackwardThreads = 128;
    private const int BackwardColumnsPerThread = 8;
    private static readonly DTypeEntries ForwardEntries = new(Module, "embedding_forward");
    private static readonly DTypeEntries BackwardEntries = new(Module, "embedding_backward");

    /// <summary>output[n, :] = table[ids[n], :].</summary>
    [KernelEntry(Module, "embedding_forward_f32")]
    [KernelEntry(Module, "embedding_forward_bf16")]
    public static void Forward(IKernelLauncher launcher, DType dtype, DevicePtr table, DevicePtr ids, DevicePtr output, int tokens, int dim)
    {
        void** args = stackalloc void*[5];
        args[0] = &table;
        args[1] = &ids;
        args[2] = &output;
        args[3] = &tokens;
        args[4] = &dim;
        ForwardEntries.Launch(launcher, dtype, GridStride.For((long)tokens * dim), args);
    }

    /// <summary>
    /// dTable (fp32)[ids[n], :] += dOutput[n, :] (dtype elements), in token order: the links between tokens of one id
    /// (<see cref="BackwardLinks"/>, in scratch borrowed from the launcher's device), then each id's row summed along them
    /// (<see cref="BackwardRows"/>), parallel over ids and columns, each row in exactly the order of the CPU backend.
    /// </summary>
    public static void Backward(IScratchLauncher launcher, DType dtype, DevicePtr dOutput, DevicePtr ids, DevicePtr dTable, int tokens, int dim)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfNegative(dim);
        if (tokens == 0 || dim == 0)
        {
            return;
        }
        long bytes = 2L * tokens * sizeof(int);
        DevicePtr next = launcher.RentScratch(bytes), first = next.Offset((long)tokens * sizeof(int));
        try
        {
            BackwardLinks(launcher, ids, next, first, tokens);
            BackwardRows(launcher, dtype, dOutput, ids, next, first, dTable, tokens, dim);
        }
        finally
        {
            launcher.ReturnScratch(next, bytes); // stream order: later work cannot overtake the launches above
        }
    }

    /// <summary>Stage 1: next[n] = the next token with ids[n] (tokens if none), first[n] = 1 when no earlier token has it (int32 each).</summary>
    [KernelEntry(Module, "embedding_backward_links")]
    public static void BackwardLinks(IKernelLauncher launcher, DevicePtr ids, DevicePtr next, DevicePtr first, int tokens)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[4];
        args[0] = &ids;
        args[1] = &next;
        args[2] = &first;
        args[3] = &tokens;
        launcher.Launch(Module, "embedding_backward_links", new LaunchShape((tokens + LinkThreads - 1) / LinkThreads, LinkThreads, LinkThreads * sizeof(int)), args);
    }

    /// <summary>Stage 2: for each token that is its id's first, dTable[id, :] += the rows of the id's tokens, along <paramref name="next"/>, in order.</summary>
    [KernelEntry(Module, "embedding_backward_f32")]
    [KernelEntry(Module, "embedding_backward_bf16")]
    public static void BackwardRows(IKernelLauncher launcher, DType dtype, DevicePtr dOutput, DevicePtr ids, DevicePtr next, DevicePtr first, DevicePtr dTable, int tokens, int dim)
    {
        const int perBlock = BackwardThreads * BackwardColumnsPerThread;
        int columnBlocks = (dim + perBlock - 1) / perBlock;
        if (columnBlocks > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(dim), dim, $"embedding rows of at most {65535 * perBlock} columns");
        }
        void** args = stackalloc void*[7];
        args[0] = &dOutput;
        args[1] = &ids;
        args[2] = &next;
        args[3] = &first;
        args[4] = &dTable;
        args[5] = &tokens;
        args[6] = &dim;
        BackwardEntries.Launch(launcher, dtype, new LaunchShape(tokens, BackwardThreads, BlocksY: columnBlocks), args);
    }
}
