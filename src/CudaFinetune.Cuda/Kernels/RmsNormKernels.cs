using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/rmsnorm.cu (see its header for what each entry computes): x, weight, y, dy and dx fp32 or bf16 (the
/// <see cref="DType"/> argument); inv_rms and dweight always fp32. Row kernels take one block of <c>threads</c> (a multiple
/// of 32, at most 1024) per row. The weight gradient is a two-stage reduction over fixed slices of rows
/// (<see cref="BackwardDWeight"/>), its fp32 partials in scratch from the device's caching allocator.
/// </summary>
public static unsafe class RmsNormKernels
{
    private const string Module = "rmsnorm";
    private static readonly DTypeEntries ForwardEntries = new(Module, "rmsnorm_forward");
    private static readonly DTypeEntries ResidualForwardEntries = new(Module, "rmsnorm_residual_forward");
    private static readonly DTypeEntries BackwardDxEntries = new(Module, "rmsnorm_backward_dx");
    private static readonly DTypeEntries DWeightPartialsEntries = new(Module, "rmsnorm_backward_dweight_partials");
    private const int MaxSlices = 256;
    private const int MinRowsPerSlice = 16;

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

    /// <summary>
    /// The rows each slice of the weight gradient's first stage sums: at least 16, and enough that there are at most 256
    /// slices. A function of the row count alone, so the order of the additions, and the result, never depend on the GPU.
    /// </summary>
    public static int RowsPerSlice(int rows) => Math.Max(MinRowsPerSlice, (rows + MaxSlices - 1) / MaxSlices);

    /// <summary>
    /// dweight (fp32) += Σ over rows of dy ⊙ x · inv_rms, parallel over rows and columns and deterministic: each slice of
    /// <see cref="RowsPerSlice"/> rows summed in row order into fp32 partials (scratch borrowed from the launcher's device), then
    /// the partials summed in slice order and added (<see cref="DWeightPartials"/>, <see cref="DWeightSum"/>).
    /// </summary>
    public static void BackwardDWeight(IScratchLauncher launcher, DType dtype, DevicePtr dy, DevicePtr x, DevicePtr invRms, DevicePtr dWeight, int rows, int cols, int threads = 256)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        BlockThreads.Check(threads);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (rows == 0 || cols == 0)
        {
            return;
        }
        int rowsPerSlice = RowsPerSlice(rows), slices = (rows + rowsPerSlice - 1) / rowsPerSlice;
        long bytes = (long)slices * cols * sizeof(float);
        DevicePtr partials = launcher.RentScratch(bytes);
        try
        {
            DWeightPartials(launcher, dtype, dy, x, invRms, partials, rows, cols, rowsPerSlice, threads);
            DWeightSum(launcher, partials, dWeight, slices, cols, threads);
        }
        finally
        {
            launcher.ReturnScratch(partials, bytes); // stream order: later work cannot overtake the launches above
        }
    }

    /// <summary>Stage 1: partials[s, c] (fp32) = Σ over rows [s·rowsPerSlice, (s+1)·rowsPerSlice), in order, of dy ⊙ x · inv_rms.</summary>
    [KernelEntry(Module, "rmsnorm_backward_dweight_partials_f32")]
    [KernelEntry(Module, "rmsnorm_backward_dweight_partials_bf16")]
    public static void DWeightPartials(IKernelLauncher launcher, DType dtype, DevicePtr dy, DevicePtr x, DevicePtr invRms, DevicePtr partials, int rows, int cols, int rowsPerSlice,
        int threads = 256)
    {
        BlockThreads.Check(threads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rowsPerSlice);
        int slices = (rows + rowsPerSlice - 1) / rowsPerSlice, perBlock = threads * (16 / dtype.SizeInBytes());
        void** args = stackalloc void*[7];
        args[0] = &dy;
        args[1] = &x;
        args[2] = &invRms;
        args[3] = &partials;
        args[4] = &rows;
        args[5] = &cols;
        args[6] = &rowsPerSlice;
        DWeightPartialsEntries.Launch(launcher, dtype, new LaunchShape((cols + perBlock - 1) / perBlock, threads, BlocksY: slices), args);
    }

    /// <summary>Stage 2: dweight[c] += Σ over slices, in order, of partials[s, c] (fp32).</summary>
    [KernelEntry(Module, "rmsnorm_backward_dweight_sum")]
    public static void DWeightSum(IKernelLauncher launcher, DevicePtr partials, DevicePtr dWeight, int slices, int cols, int threads = 256)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        BlockThreads.Check(threads);
        void** args = stackalloc void*[4];
        args[0] = &partials;
        args[1] = &dWeight;
        args[2] = &slices;
        args[3] = &cols;
        launcher.Launch(Module, "rmsnorm_backward_dweight_sum", new LaunchShape((cols + threads - 1) / threads, threads), args);
    }
}
