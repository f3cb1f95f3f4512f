using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/rope.cu: rotary position embedding, x [tokens, heads·headDim] (fp32 or bf16, the <see cref="DType"/>
/// argument) rotated in place; cos and sin fp32 [seqLen, headDim/2]; inverse ≠ 0 for the backward.
/// </summary>
public static unsafe class RopeKernels
{
    private const string Module = "rope";
    private static readonly DTypeEntries Entries = new(Module, "rope");

    [KernelEntry(Module, "rope_f32")]
    [KernelEntry(Module, "rope_bf16")]
    public static void Apply(IKernelLauncher launcher, DType dtype, DevicePtr x, DevicePtr cos, DevicePtr sin, int tokens, int heads, int headDim, int seqLen, int inverse)
    {
        void** args = stackalloc void*[8];
        args[0] = &x;
        args[1] = &cos;
        args[2] = &sin;
        args[3] = &tokens;
        args[4] = &heads;
        args[5] = &headDim;
        args[6] = &seqLen;
        args[7] = &inverse;
        Entries.Launch(launcher, dtype, GridStride.For((long)tokens * heads * (headDim / 2)), args);
    }
}
