namespace CudaFinetune.Cuda.Kernels;

/// <summary>Launchers of kernels/rmsnorm.cu (see its header for what each entry computes).</summary>
public static unsafe class RmsNormKernels
{
    private const string Module = "rmsnorm";

    /// <summary>
    /// y = x · inv_rms · weight per row, saving inv_rms = 1/√(mean(x²) + eps): one block of
    /// <paramref name="threads"/> (a multiple of 32, at most 1024) per row.
    /// </summary>
    [KernelEntry(Module, "rmsnorm_forward_f32")]
    public static void ForwardF32(IKernelLauncher launcher, DevicePtr x, DevicePtr weight, DevicePtr y, DevicePtr invRms, int rows, int cols, float eps, int threads = 256)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        if (threads is < 32 or > 1024 || threads % 32 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "a multiple of 32 from 32 to 1024");
        }
        void** args = stackalloc void*[7];
        args[0] = &x;
        args[1] = &weight;
        args[2] = &y;
        args[3] = &invRms;
        args[4] = &rows;
        args[5] = &cols;
        args[6] = &eps;
        launcher.Launch(Module, "rmsnorm_forward_f32", new LaunchShape(rows, threads), args);
    }
}
