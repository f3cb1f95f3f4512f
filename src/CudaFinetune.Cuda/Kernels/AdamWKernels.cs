using CudaFinetune.Backends;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/adamw.cu: one AdamW step on fp32 master weights p with fp32 moments m, v; weightsBF16 (or null)
/// receives p rounded to bf16. The scalars are the CPU backend's, from <see cref="AdamWStep"/> (<see cref="Scalars"/>).
/// </summary>
public static unsafe class AdamWKernels
{
    private const string Module = "adamw";

    /// <summary>The kernel's scalar arguments for one step, computed in double and rounded once, as the CPU backend does.</summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    public readonly record struct Scalars(float Decay, float Beta1, float Beta2, float OneMinusBeta1, float OneMinusBeta2, float StepSize, float BiasCorrection2Sqrt, float Epsilon, float GradScale)
    {
        public static Scalars From(in AdamWStep step) => new(
            (float)(1 - step.LearningRate * step.WeightDecay), (float)step.Beta1, (float)step.Beta2, (float)(1 - step.Beta1), (float)(1 - step.Beta2),
            (float)(step.LearningRate / step.BiasCorrection1), (float)Math.Sqrt(step.BiasCorrection2), (float)step.Epsilon, (float)step.GradientScale);
    }

    /// <summary>fp32 gradients.</summary>
    [KernelEntry(Module, "adamw_f32")]
    public static void F32(IKernelLauncher launcher, DevicePtr p, DevicePtr gradient, DevicePtr m, DevicePtr v, DevicePtr weightsBF16, long n,
        float decay, float beta1, float beta2, float oneMinusBeta1, float oneMinusBeta2, float stepSize, float biasCorrection2Sqrt, float epsilon, float gradScale)
        => Launch(launcher, "adamw_f32", p, gradient, m, v, weightsBF16, n, new Scalars(decay, beta1, beta2, oneMinusBeta1, oneMinusBeta2, stepSize, biasCorrection2Sqrt, epsilon, gradScale));

    /// <summary>bf16 gradients.</summary>
    [KernelEntry(Module, "adamw_bf16_grad")]
    public static void BF16Gradient(IKernelLauncher launcher, DevicePtr p, DevicePtr gradient, DevicePtr m, DevicePtr v, DevicePtr weightsBF16, long n,
        float decay, float beta1, float beta2, float oneMinusBeta1, float oneMinusBeta2, float stepSize, float biasCorrection2Sqrt, float epsilon, float gradScale)
        => Launch(launcher, "adamw_bf16_grad", p, gradient, m, v, weightsBF16, n, new Scalars(decay, beta1, beta2, oneMinusBeta1, oneMinusBeta2, stepSize, biasCorrection2Sqrt, epsilon, gradScale));

    /// <summary>One step with <paramref name="s"/>; fp32 or bf16 gradients.</summary>
    public static void Step(IKernelLauncher launcher, bool bf16Gradient, DevicePtr p, DevicePtr gradient, DevicePtr m, DevicePtr v, DevicePtr weightsBF16, long n, in Scalars s)
        => Launch(launcher, bf16Gradient ? "adamw_bf16_grad" : "adamw_f32", p, gradient, m, v, weightsBF16, n, s);

    private static void Launch(IKernelLauncher launcher, string entry, DevicePtr p, DevicePtr gradient, DevicePtr m, DevicePtr v, DevicePtr weightsBF16, long n, Scalars s)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[15];
        args[0] = &p;
        args[1] = &gradient;
        args[2] = &m;
        args[3] = &v;
        args[4] = &weightsBF16;
        args[5] = &n;
        float* scalars = (float*)&s; // nine floats, in declaration order (a sequential struct)
        for (int i = 0; i < 9; i++)
        {
            args[6 + i] = scalars + i;
        }
        launcher.Launch(Module, entry, GridStride.For(n), args);
    }
}
