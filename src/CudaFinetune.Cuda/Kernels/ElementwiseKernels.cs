using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/elementwise.cu: casts between fp32 and bf16, fill, add, add_scaled and dropout, the last four on fp32
/// or bf16 elements (the <see cref="DType"/> argument); n is the element count.
/// </summary>
public static unsafe class ElementwiseKernels
{
    private const string Module = "elementwise";
    private static readonly DTypeEntries FillEntries = new(Module, "fill");
    private static readonly DTypeEntries AddEntries = new(Module, "add");
    private static readonly DTypeEntries AddScaledEntries = new(Module, "add_scaled");
    private static readonly DTypeEntries DropoutEntries = new(Module, "dropout");

    [KernelEntry(Module, "cast_f32_bf16")]
    public static void CastF32ToBF16(IKernelLauncher launcher, DevicePtr x, DevicePtr y, long n) => Cast(launcher, "cast_f32_bf16", x, y, n);

    [KernelEntry(Module, "cast_bf16_f32")]
    public static void CastBF16ToF32(IKernelLauncher launcher, DevicePtr x, DevicePtr y, long n) => Cast(launcher, "cast_bf16_f32", x, y, n);

    /// <summary>x = value (rounded to bf16 for bf16 elements).</summary>
    [KernelEntry(Module, "fill_f32")]
    [KernelEntry(Module, "fill_bf16")]
    public static void Fill(IKernelLauncher launcher, DType dtype, DevicePtr x, float value, long n)
    {
        void** args = stackalloc void*[3];
        args[0] = &x;
        args[1] = &value;
        args[2] = &n;
        FillEntries.Launch(launcher, dtype, GridStride.For(n, dtype), args);
    }

    /// <summary>out = a + b; out may be a or b.</summary>
    [KernelEntry(Module, "add_f32")]
    [KernelEntry(Module, "add_bf16")]
    public static void Add(IKernelLauncher launcher, DType dtype, DevicePtr a, DevicePtr b, DevicePtr output, long n) => Binary(launcher, AddEntries, dtype, a, b, output, n);

    /// <summary>accumulator += scale · x.</summary>
    [KernelEntry(Module, "add_scaled_f32")]
    [KernelEntry(Module, "add_scaled_bf16")]
    public static void AddScaled(IKernelLauncher launcher, DType dtype, DevicePtr x, float scale, DevicePtr accumulator, long n)
    {
        void** args = stackalloc void*[4];
        args[0] = &x;
        args[1] = &scale;
        args[2] = &accumulator;
        args[3] = &n;
        AddScaledEntries.Launch(launcher, dtype, GridStride.For(n, dtype), args);
    }

    /// <summary>out = x · scale where Philox word i's top 24 bits reach threshold, else 0 (the CPU backend's mask).</summary>
    [KernelEntry(Module, "dropout_f32")]
    [KernelEntry(Module, "dropout_bf16")]
    public static void Dropout(IKernelLauncher launcher, DType dtype, DevicePtr x, DevicePtr output, long n, ulong seed, uint hi0, uint hi1, uint threshold, float scale)
    {
        void** args = stackalloc void*[8];
        args[0] = &x;
        args[1] = &output;
        args[2] = &n;
        args[3] = &seed;
        args[4] = &hi0;
        args[5] = &hi1;
        args[6] = &threshold;
        args[7] = &scale;
        DropoutEntries.Launch(launcher, dtype, GridStride.For(n, dtype), args);
    }

    /// <summary>A grid-stride kernel of two inputs and an output (also kernels/swiglu.cu's forward).</summary>
    internal static void Binary(IKernelLauncher launcher, DTypeEntries entries, DType dtype, DevicePtr a, DevicePtr b, DevicePtr output, long n)
    {
        void** args = stackalloc void*[4];
        args[0] = &a;
        args[1] = &b;
        args[2] = &output;
        args[3] = &n;
        entries.Launch(launcher, dtype, GridStride.For(n, dtype), args);
    }

    private static void Cast(IKernelLauncher launcher, string entry, DevicePtr x, DevicePtr y, long n)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[3];
        args[0] = &x;
        args[1] = &y;
        args[2] = &n;
        launcher.Launch(Module, entry, GridStride.ForVectors(n, 8), args);
    }
}
