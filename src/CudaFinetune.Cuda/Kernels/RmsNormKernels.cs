using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/rmsnorm.cu (see its header for what each entry computes): x, weight, y, dy and dx fp32 or bf16 (the
/// <see cref="DType"/> argument); inv_rms and dweight always fp32. Row kernels take one block of <c>threads</c> (a multiple
/// of 32, at most 1024) per row.
/// </summary>
public static unsafe class RmsNormKernels
{
    private const string Module = "rmsnorm";
    private static readonly DTypeEntries ForwardEntries = new(Module, "rmsnorm_forward");
    private static readonly DTypeEntries ResidualForwardEntries = new(Module, "rmsnorm_residual_forward");
    private static readonly DTypeEntries BackwardDxEntries = new(Module, "rmsnorm_backward_dx");
    private static readonly DTypeEntries BackwardDWeightEntries = new(Module, "rmsnorm_backward_dweight");

    /// <summary>y = x · inv_rms · weight per row, saving inv_rms = 1/√(mean(x²) + eps).</summary>
    [KernelEntry(Module, "rmsnorm_forward_f32")]
    [KernelEntry(Module, "rmsnorm_forward_bf16")]
    public static void Forward(IKernelLauncher launcher, DType dtype, DevicePtr x, DevicePtr weight, DevicePtr y, DevicePtr invRms, int rows, int cols, float eps, int threads = 256)
    {
        BlockThreads.Check(threads);
        void** args = stackalloc void*[7];
        args[0] = &x;
        args[1] = &weight;
        args[2] = &y;
        args[3] = &invRms;
        args[4] = &rows;
        args[5] = &cols;
        args[6] = &eps;
        ForwardEntries.Launch(launcher, dtype, new LaunchShape(rows, threads), args);
    }

    /// <summary>sum = x + delta (stored as x's dtype), then y = RMSNorm(sum) as <see cref="Forward"/>: a residual add and the next norm in one pass.</summary>
    [KernelEntry(Module, "rmsnorm_residual_forward_f32")]
    [KernelEntry(Module, "rmsnorm_residual_forward_bf16")]
    public static void ResidualForward(IKernelLauncher launcher, DType dtype, DevicePtr x, DevicePtr delta, DevicePtr sum, DevicePtr weight, DevicePtr y, DevicePtr invRms,
        int rows, int cols, float eps, int threads = 256)
    {
        BlockThreads.Check(threads);
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
        ResidualForwardEntries.Launch(launcher, dtype, new LaunchShape(rows, threads), args);
    }

    /// <summary>dx += ∂loss/∂x.</summary>
    [KernelEntry(Module, "rmsnorm_backward_dx_f32")]
    [KernelEntry(Module, "rmsnorm_backward_dx_bf16")]
    public static void BackwardDx(IKernelLauncher launcher, DType dtype, DevicePtr dy, DevicePtr x, DevicePtr weight, DevicePtr invRms, DevicePtr dx, int rows, int cols, int threads = 256)
    {
        BlockThreads.Check(threads);
        void** args = stackalloc void*[7];
        args[0] = &dy;
        args[1] = &x;
        args[2] = &weight;
        args[3] = &invRms;
        args[4] = &dx;
        args[5] = &rows;
        args[6] = &cols;
        BackwardDxEntries.Launch(launcher, dtype, new LaunchShape(rows, threads), args);
    }

    /// <summary>dweight (fp32) += Σ over rows (in order) of dy ⊙ x · inv_rms: one thread per column.</summary>
    [KernelEntry(Module, "rmsnorm_backward_dweight_f32")]
    [KernelEntry(Module, "rmsnorm_backward_dweight_bf16")]
    public static void BackwardDWeight(IKernelLauncher launcher, DType dtype, DevicePtr dy, DevicePtr x, DevicePtr invRms, DevicePtr dWeight, int rows, int cols, int threads = 256)
    {
        BlockThreads.Check(threads);
        void** args = stackalloc void*[6];
        args[0] = &dy;
        args[1] = &x;
        args[2] = &invRms;
        args[3] = &dWeight;
        args[4] = &rows;
        args[5] = &cols;
        BackwardDWeightEntries.Launch(launcher, dtype, new LaunchShape((cols + threads - 1) / threads, threads), args);
    }
}
