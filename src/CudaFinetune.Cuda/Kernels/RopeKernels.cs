namespace CudaFinetune.Cuda.Kernels;

/// <summary>Launchers of kernels/rope.cu: x [tokens, heads·headDim] rotated in place; cos and sin fp32 [seqLen, headDim/2]; inverse ≠ 0 for the backward.</summary>
public static unsafe class RopeKernels
{
    private const string Module = "rope";

    [KernelEntry(Module, "rope_f32")]
    public static void F32(IKernelLauncher launcher, DevicePtr x, DevicePtr cos, DevicePtr sin, int tokens, int heads, int headDim, int seqLen, int inverse)
        => Launch(launcher, "rope_f32", x, cos, sin, tokens, heads, headDim, seqLen, inverse);

    [KernelEntry(Module, "rope_bf16")]
    public static void BF16(IKernelLauncher launcher, DevicePtr x, DevicePtr cos, DevicePtr sin, int tokens, int heads, int headDim, int seqLen, int inverse)
        => Launch(launcher, "rope_bf16", x, cos, sin, tokens, heads, headDim, seqLen, inverse);

    private static void Launch(IKernelLauncher launcher, string entry, DevicePtr x, DevicePtr cos, DevicePtr sin, int tokens, int heads, int headDim, int seqLen, int inverse)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[8];
        args[0] = &x;
        args[1] = &cos;
        args[2] = &sin;
        args[3] = &tokens;
        args[4] = &heads;
        args[5] = &headDim;
        args[6] = &seqLen;
        args[7] = &inverse;
        launcher.Launch(Module, entry, GridStride.For((long)tokens * heads * (headDim / 2)), args);
    }
}
