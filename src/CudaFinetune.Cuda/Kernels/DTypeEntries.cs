using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// A kernel built for fp32 and for bf16 elements: its PTX module and its two entries, which kernels/*.cu name
/// <c>name_f32</c> and <c>name_bf16</c>. Both names are made once, so a launcher picks its entry by the tensors'
/// <see cref="DType"/> without building a string.
/// </summary>
internal sealed unsafe class DTypeEntries
{
    /// <summary>The entries <paramref name="name"/><c>_f32</c> and <paramref name="name"/><c>_bf16</c> of <paramref name="module"/>.</summary>
    public DTypeEntries(string module, string name)
        : this(module, name + "_f32", name + "_bf16")
    {
    }

    /// <summary>Entries named otherwise (adamw.cu's <c>adamw_bf16_grad</c>).</summary>
    public DTypeEntries(string module, string f32, string bf16)
    {
        Module = module;
        F32 = f32;
        BF16 = bf16;
    }

    public string Module { get; }

    public string F32 { get; }

    public string BF16 { get; }

    /// <summary>The entry for <paramref name="dtype"/> elements.</summary>
    public string For(DType dtype) => dtype switch
    {
        DType.F32 => F32,
        DType.BF16 => BF16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, $"{F32} and {BF16} take F32 or BF16 elements"),
    };

    /// <summary>Launches the entry for <paramref name="dtype"/>.</summary>
    public void Launch(IKernelLauncher launcher, DType dtype, LaunchShape shape, void** arguments)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        launcher.Launch(Module, For(dtype), shape, arguments);
    }
}
