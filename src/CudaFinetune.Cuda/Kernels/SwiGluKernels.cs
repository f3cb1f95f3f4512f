using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>Launchers of kernels/swiglu.cu: the MLP activation silu(gate) ⊙ up and its gradients, fp32 or bf16 (the <see cref="DType"/> argument); n is the element count.</summary>
public static unsafe class SwiGluKernels
{
    private const string Module = "swiglu";
    private static readonly DTypeEntries ForwardEntries = new(Module, "swiglu_forward");
    private static readonly DTypeEntries BackwardEntries = new(Module, "swiglu_backward");

    /// <summary>out = silu(gate) ⊙ up.</summary>
    [KernelEntry(Module, "swiglu_forward_f32")]
    [KernelEntry(Module, "swiglu_forward_bf16")]
    public static void Forward(IKernelLauncher launcher, DType dtype, DevicePtr gate, DevicePtr up, DevicePtr output, long n)
        => ElementwiseKernels.Binary(launcher, ForwardEntries, dtype, gate, up, output, n);

    /// <summary>dGate and dUp are overwritten with the gradients of the forward.</summary>
    [KernelEntry(Module, "swiglu_backward_f32")]
    [KernelEntry(Module, "swiglu_backward_bf16")]
    public static void Backward(IKernelLauncher launcher, DType dtype, DevicePtr dOutput, DevicePtr gate, DevicePtr up, DevicePtr dGate, DevicePtr dUp, long n)
    {
        void** args = stackalloc void*[6];
        args[0] = &dOutput;
        args[1] = &gate;
        args[2] = &up;
        args[3] = &dGate;
        args[4] = &dUp;
        args[5] = &n;
        BackwardEntries.Launch(launcher, dtype, GridStride.For(n, dtype), args);
    }
}
