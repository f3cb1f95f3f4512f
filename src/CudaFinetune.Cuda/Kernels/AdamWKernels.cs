using CudaFinetune.Backends;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/adamw.cu: one AdamW step on fp32 master weights p with fp32 moments m, v and fp32 or bf16 gradients;
/// weightsBF16 (or null) receives p rounded to bf16. The scalars are the CPU backend's, from <see cref="AdamWStep"/> (<see cref="Scalars"/>).
/// </summary>
public static unsafe class AdamWKernels
{
    private const string Module = "adamw";
    private static readonly DTypeEntries Entries = new(Module, "adamw_f32", "adamw_bf16_grad");

    /// <summary>The kernel's scalar arguments for one step, computed in double and rounded once, as the CPU backend does.</summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    public readonly record struct Scalars(float Decay, float Beta1, float Beta2, float OneMinusBeta1, float OneMinusBeta2, float StepSize, float BiasCorrection2Sqrt, float Epsilon, float GradScale)
    {
        public static Scalars From(in AdamWStep step) => new(
            (float)(1 - step.LearningRate * step.WeightDecay), (float)step.Beta1, (float)step.Beta2, (float)(1 - step.Beta1), (float)(1 - step.Beta2),
            (float)(step.LearningRate / step.BiasCorrection1), (float)Math.Sqrt(step.BiasCorrection2), (float)step.Epsilon, (float)step.GradientScale);
    }

    /// <summary>One step with <paramref name="s"/> (the kernel's nine float arguments, in order); <paramref name="gradientType"/> is the gradient's.</summary>
    [KernelEntry(Module, "adamw_f32")]
    [KernelEntry(Module, "adamw_bf16_grad")]
    public static void Step(IKernelLauncher launcher, DType gradientType, DevicePtr p, DevicePtr gradient, DevicePtr m, DevicePtr v, DevicePtr weightsBF16, long n, in Scalars s)
    {
        void** args = stackalloc void*[15];
        args[0] = &p;
        args[1] = &gradient;
        args[2] = &m;
        args[3] = &v;
        args[4] = &weightsBF16;
        args[5] = &n;
        Scalars scalars = s;
        float* each = (float*)&scalars; // nine floats, in declaration order (a sequential struct)
        for (int i = 0; i < 9; i++)
        {
            args[6 + i] = each + i;
        }
        Entries.Launch(launcher, gradientType, GridStride.For(n), args);
    }
}
