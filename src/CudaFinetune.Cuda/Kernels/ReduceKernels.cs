using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/reduce.cu: partials[b] = Σ (or Σ²) of chunk b of x (fp32 or bf16, the <see cref="DType"/> argument),
/// for a fixed number of blocks (<see cref="Blocks"/>, independent of the GPU), so that adding the partials in order on the
/// host is deterministic.
/// </summary>
public static unsafe class ReduceKernels
{
    /// <summary>How many partial sums a reduction produces.</summary>
    public const int Blocks = 256;

    private const string Module = "reduce";
    private const int Threads = 256;
    private static readonly DTypeEntries Entries = new(Module, "reduce");

    [KernelEntry(Module, "reduce_f32")]
    [KernelEntry(Module, "reduce_bf16")]
    public static void PartialSums(IKernelLauncher launcher, DType dtype, DevicePtr x, long n, int squares, DevicePtr partials)
    {
        void** args = stackalloc void*[4];
        args[0] = &x;
        args[1] = &n;
        args[2] = &squares;
        args[3] = &partials;
        Entries.Launch(launcher, dtype, new LaunchShape(Blocks, Threads), args);
    }
}
