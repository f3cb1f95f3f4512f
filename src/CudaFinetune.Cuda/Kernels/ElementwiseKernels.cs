namespace CudaFinetune.Cuda.Kernels;

/// <summary>Launchers of kernels/elementwise.cu (casts, fill, add, add_scaled, dropout) and kernels/swiglu.cu; n is the element count.</summary>
public static unsafe class ElementwiseKernels
{
    private const string Module = "elementwise";
    private const string SwiGluModule = "swiglu";

    [KernelEntry(Module, "cast_f32_bf16")]
    public static void CastF32ToBF16(IKernelLauncher launcher, DevicePtr x, DevicePtr y, long n) => Unary(launcher, Module, "cast_f32_bf16", x, y, n);

    [KernelEntry(Module, "cast_bf16_f32")]
    public static void CastBF16ToF32(IKernelLauncher launcher, DevicePtr x, DevicePtr y, long n) => Unary(launcher, Module, "cast_bf16_f32", x, y, n);

    [KernelEntry(Module, "fill_f32")]
    public static void FillF32(IKernelLauncher launcher, DevicePtr x, float value, long n) => Fill(launcher, "fill_f32", x, value, n);

    [KernelEntry(Module, "fill_bf16")]
    public static void FillBF16(IKernelLauncher launcher, DevicePtr x, float value, long n) => Fill(launcher, "fill_bf16", x, value, n);

    /// <summary>out = a + b; out may be a or b.</summary>
    [KernelEntry(Module, "add_f32")]
    public static void AddF32(IKernelLauncher launcher, DevicePtr a, DevicePtr b, DevicePtr output, long n) => Binary(launcher, Module, "add_f32", a, b, output, n);

    [KernelEntry(Module, "add_bf16")]
    public static void AddBF16(IKernelLauncher launcher, DevicePtr a, DevicePtr b, DevicePtr output, long n) => Binary(launcher, Module, "add_bf16", a, b, output, n);

    /// <summary>accumulator += scale · x.</summary>
    [KernelEntry(Module, "add_scaled_f32")]
    public static void AddScaledF32(IKernelLauncher launcher, DevicePtr x, float scale, DevicePtr accumulator, long n) => AddScaled(launcher, "add_scaled_f32", x, scale, accumulator, n);

    [KernelEntry(Module, "add_scaled_bf16")]
    public static void AddScaledBF16(IKernelLauncher launcher, DevicePtr x, float scale, DevicePtr accumulator, long n) => AddScaled(launcher, "add_scaled_bf16", x, scale, accumulator, n);

    /// <summary>out = x · scale where Philox word i's top 24 bits reach threshold, else 0 (the CPU backend's mask).</summary>
    [KernelEntry(Module, "dropout_f32")]
    public static void DropoutF32(IKernelLauncher launcher, DevicePtr x, DevicePtr output, long n, ulong seed, uint hi0, uint hi1, uint threshold, float scale)
        => Dropout(launcher, "dropout_f32", x, output, n, seed, hi0, hi1, threshold, scale);

    [KernelEntry(Module, "dropout_bf16")]
    public static void DropoutBF16(IKernelLauncher launcher, DevicePtr x, DevicePtr output, long n, ulong seed, uint hi0, uint hi1, uint threshold, float scale)
        => Dropout(launcher, "dropout_bf16", x, output, n, seed, hi0, hi1, threshold, scale);

    /// <summary>out = silu(gate) ⊙ up.</summary>
    [KernelEntry(SwiGluModule, "swiglu_forward_f32")]
    public static void SwiGluForwardF32(IKernelLauncher launcher, DevicePtr gate, DevicePtr up, DevicePtr output, long n) => Binary(launcher, SwiGluModule, "swiglu_forward_f32", gate, up, output, n);

    [KernelEntry(SwiGluModule, "swiglu_forward_bf16")]
    public static void SwiGluForwardBF16(IKernelLauncher launcher, DevicePtr gate, DevicePtr up, DevicePtr output, long n) => Binary(launcher, SwiGluModule, "swiglu_forward_bf16", gate, up, output, n);

    /// <summary>dGate and dUp are overwritten with the gradients of the forward.</summary>
    [KernelEntry(SwiGluModule, "swiglu_backward_f32")]
    public static void SwiGluBackwardF32(IKernelLauncher launcher, DevicePtr dOutput, DevicePtr gate, DevicePtr up, DevicePtr dGate, DevicePtr dUp, long n)
        => SwiGluBackward(launcher, "swiglu_backward_f32", dOutput, gate, up, dGate, dUp, n);

    [KernelEntry(SwiGluModule, "swiglu_backward_bf16")]
    public static void SwiGluBackwardBF16(IKernelLauncher launcher, DevicePtr dOutput, DevicePtr gate, DevicePtr up, DevicePtr dGate, DevicePtr dUp, long n)
        => SwiGluBackward(launcher, "swiglu_backward_bf16", dOutput, gate, up, dGate, dUp, n);

    private static void Unary(IKernelLauncher launcher, string module, string entry, DevicePtr x, DevicePtr y, long n)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[3];
        args[0] = &x;
        args[1] = &y;
        args[2] = &n;
        launcher.Launch(module, entry, GridStride.For(n), args);
    }

    private static void Fill(IKernelLauncher launcher, string entry, DevicePtr x, float value, long n)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[3];
        args[0] = &x;
        args[1] = &value;
        args[2] = &n;
        launcher.Launch(Module, entry, GridStride.For(n), args);
    }

    private static void Binary(IKernelLauncher launcher, string module, string entry, DevicePtr a, DevicePtr b, DevicePtr output, long n)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[4];
        args[0] = &a;
        args[1] = &b;
        args[2] = &output;
        args[3] = &n;
        launcher.Launch(module, entry, GridStride.For(n), args);
    }

    private static void AddScaled(IKernelLauncher launcher, string entry, DevicePtr x, float scale, DevicePtr accumulator, long n)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[4];
        args[0] = &x;
        args[1] = &scale;
        args[2] = &accumulator;
        args[3] = &n;
        launcher.Launch(Module, entry, GridStride.For(n), args);
    }

    private static void Dropout(IKernelLauncher launcher, string entry, DevicePtr x, DevicePtr output, long n, ulong seed, uint hi0, uint hi1, uint threshold, float scale)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[8];
        args[0] = &x;
        args[1] = &output;
        args[2] = &n;
        args[3] = &seed;
        args[4] = &hi0;
        args[5] = &hi1;
        args[6] = &threshold;
        args[7] = &scale;
        launcher.Launch(Module, entry, GridStride.For(n), args);
    }

    private static void SwiGluBackward(IKernelLauncher launcher, string entry, DevicePtr dOutput, DevicePtr gate, DevicePtr up, DevicePtr dGate, DevicePtr dUp, long n)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[6];
        args[0] = &dOutput;
        args[1] = &gate;
        args[2] = &up;
        args[3] = &dGate;
        args[4] = &dUp;
        args[5] = &n;
        launcher.Launch(SwiGluModule, entry, GridStride.For(n), args);
    }
}
