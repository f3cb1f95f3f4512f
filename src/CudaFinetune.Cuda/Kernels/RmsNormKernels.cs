namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/rmsnorm.cu (see its header for what each entry computes): x, weight, y, dy and dx fp32 or bf16 by
/// entry; inv_rms and dweight always fp32. Row kernels take one block of <c>threads</c> (a multiple of 32, at most 1024) per row.
/// </summary>
public static unsafe class RmsNormKernels
{
    private const string Module = "rmsnorm";

    /// <summary>y = x · inv_rms · weight per row, saving inv_rms = 1/√(mean(x²) + eps).</summary>
    [KernelEntry(Module, "rmsnorm_forward_f32")]
    public static void ForwardF32(IKernelLauncher launcher, DevicePtr x, DevicePtr weight, DevicePtr y, DevicePtr invRms, int rows, int cols, float eps, int threads = 256)
        => Forward(launcher, "rmsnorm_forward_f32", x, weight, y, invRms, rows, cols, eps, threads);

    [KernelEntry(Module, "rmsnorm_forward_bf16")]
    public static void ForwardBF16(IKernelLauncher launcher, DevicePtr x, DevicePtr weight, DevicePtr y, DevicePtr invRms, int rows, int cols, float eps, int threads = 256)
        => Forward(launcher, "rmsnorm_forward_bf16", x, weight, y, invRms, rows, cols, eps, threads);

    /// <summary>sum = x + delta (stored as x's dtype), then y = RMSNorm(sum) as <see cref="ForwardF32"/>: a residual add and the next norm in one pass.</summary>
    [KernelEntry(Module, "rmsnorm_residual_forward_f32")]
    public static void ResidualForwardF32(IKernelLauncher launcher, DevicePtr x, DevicePtr delta, DevicePtr sum, DevicePtr weight, DevicePtr y, DevicePtr invRms, int rows, int cols, float eps, int threads = 256)
        => ResidualForward(launcher, "rmsnorm_residual_forward_f32", x, delta, sum, weight, y, invRms, rows, cols, eps, threads);

    [KernelEntry(Module, "rmsnorm_residual_forward_bf16")]
    public static void ResidualForwardBF16(IKernelLauncher launcher, DevicePtr x, DevicePtr delta, DevicePtr sum, DevicePtr weight, DevicePtr y, DevicePtr invRms, int rows, int cols, float eps, int threads = 256)
        => ResidualForward(launcher, "rmsnorm_residual_forward_bf16", x, delta, sum, weight, y, invRms, rows, cols, eps, threads);

    /// <summary>dx += ∂loss/∂x.</summary>
    [KernelEntry(Module, "rmsnorm_backward_dx_f32")]
    public static void BackwardDxF32(IKernelLauncher launcher, DevicePtr dy, DevicePtr x, DevicePtr weight, DevicePtr invRms, DevicePtr dx, int rows, int cols, int threads = 256)
        => BackwardDx(launcher, "rmsnorm_backward_dx_f32", dy, x, weight, invRms, dx, rows, cols, threads);

    [KernelEntry(Module, "rmsnorm_backward_dx_bf16")]
    public static void BackwardDxBF16(IKernelLauncher launcher, DevicePtr dy, DevicePtr x, DevicePtr weight, DevicePtr invRms, DevicePtr dx, int rows, int cols, int threads = 256)
        => BackwardDx(launcher, "rmsnorm_backward_dx_bf16", dy, x, weight, invRms, dx, rows, cols, threads);

    /// <summary>dweight (fp32) += Σ over rows (in order) of dy ⊙ x · inv_rms: one thread per column.</summary>
    [KernelEntry(Module, "rmsnorm_backward_dweight_f32")]
    public static void BackwardDWeightF32(IKernelLauncher launcher, DevicePtr dy, DevicePtr x, DevicePtr invRms, DevicePtr dWeight, int rows, int cols, int threads = 256)
        => BackwardDWeight(launcher, "rmsnorm_backward_dweight_f32", dy, x, invRms, dWeight, rows, cols, threads);

    [KernelEntry(Module, "rmsnorm_backward_dweight_bf16")]
    public static void BackwardDWeightBF16(IKernelLauncher launcher, DevicePtr dy, DevicePtr x, DevicePtr invRms, DevicePtr dWeight, int rows, int cols, int threads = 256)
        => BackwardDWeight(launcher, "rmsnorm_backward_dweight_bf16", dy, x, invRms, dWeight, rows, cols, threads);

    private static void Forward(IKernelLauncher launcher, string entry, DevicePtr x, DevicePtr weight, DevicePtr y, DevicePtr invRms, int rows, int cols, float eps, int threads)
    {
        CheckThreads(launcher, threads);
        void** args = stackalloc void*[7];
        args[0] = &x;
        args[1] = &weight;
        args[2] = &y;
        args[3] = &invRms;
        args[4] = &rows;
        args[5] = &cols;
        args[6] = &eps;
        launcher.Launch(Module, entry, new LaunchShape(rows, threads), args);
    }

    private static void ResidualForward(IKernelLauncher launcher, string entry, DevicePtr x, DevicePtr delta, DevicePtr sum, DevicePtr weight, DevicePtr y, DevicePtr invRms,
        int rows, int cols, float eps, int threads)
    {
        CheckThreads(launcher, threads);
        void** args = stackalloc void*[9];
        args[0] = &x;
        args[1] = &delta;
        args[2] = &sum;
        args[3] = &weight;
        args[4] = &y;
        args[5] = &invRms;
        args[6] = &rows;
        args[7] = &cols;
        args[8] = &eps;
        launcher.Launch(Module, entry, new LaunchShape(rows, threads), args);
    }

    private static void BackwardDx(IKernelLauncher launcher, string entry, DevicePtr dy, DevicePtr x, DevicePtr weight, DevicePtr invRms, DevicePtr dx, int rows, int cols, int threads)
    {
        CheckThreads(launcher, threads);
        void** args = stackalloc void*[7];
        args[0] = &dy;
        args[1] = &x;
        args[2] = &weight;
        args[3] = &invRms;
        args[4] = &dx;
        args[5] = &rows;
        args[6] = &cols;
        launcher.Launch(Module, entry, new LaunchShape(rows, threads), args);
    }

    private static void BackwardDWeight(IKernelLauncher launcher, string entry, DevicePtr dy, DevicePtr x, DevicePtr invRms, DevicePtr dWeight, int rows, int cols, int threads)
    {
        CheckThreads(launcher, threads);
        void** args = stackalloc void*[6];
        args[0] = &dy;
        args[1] = &x;
        args[2] = &invRms;
        args[3] = &dWeight;
        args[4] = &rows;
        args[5] = &cols;
        launcher.Launch(Module, entry, new LaunchShape((cols + threads - 1) / threads, threads), args);
    }

    private static void CheckThreads(IKernelLauncher launcher, int threads)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        if (threads is < 32 or > 1024 || threads % 32 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "a multiple of 32 from 32 to 1024");
        }
    }
}
