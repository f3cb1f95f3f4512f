namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/reduce.cu: partials[b] = Σ (or Σ²) of chunk b of x, for a fixed number of blocks
/// (<see cref="Blocks"/>, independent of the GPU), so that adding the partials in order on the host is deterministic.
/// </summary>
public static unsafe class ReduceKernels
{
    /// <summary>How many partial sums a reduction produces.</summary>
    public const int Blocks = 256;

    private const string Module = "reduce";
    private const int Threads = 256;

    [KernelEntry(Module, "reduce_f32")]
    public static void F32(IKernelLauncher launcher, DevicePtr x, long n, int squares, DevicePtr partials) => Launch(launcher, "reduce_f32", x, n, squares, partials);

    [KernelEntry(Module, "reduce_bf16")]
    public static void BF16(IKernelLauncher launcher, DevicePtr x, long n, int squares, DevicePtr partials) => Launch(launcher, "reduce_bf16", x, n, squares, partials);

    private static void Launch(IKernelLauncher launcher, string entry, DevicePtr x, long n, int squares, DevicePtr partials)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[4];
        args[0] = &x;
        args[1] = &n;
        args[2] = &squares;
        args[3] = &partials;
        launcher.Launch(Module, entry, new LaunchShape(Blocks, Threads), args);
    }
}
