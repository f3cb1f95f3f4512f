namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/lora.cu: the LoRA projection y = x·Wᵀ + low·Bᵀ and its input gradient dx (+)= dy·W + dlow·A in one
/// pass over the output, bf16 with fp32 accumulation. <see cref="Fits"/> says whether the sizes suit the kernels.
/// </summary>
public static unsafe class LoraKernels
{
    private const string Module = "lora";
    private const int Tile = 64;
    private const int Threads = 128;
    private const int SharedBytes = 2 * Tile * (Tile + 8) * sizeof(ushort);

    /// <summary>Whether rows of <paramref name="sizes"/> elements keep 16-byte alignment (multiples of 8) and every address is 16-byte aligned.</summary>
    public static bool Fits(ReadOnlySpan<int> sizes, ReadOnlySpan<DevicePtr> addresses)
    {
        foreach (int size in sizes)
        {
            if (size <= 0 || size % 8 != 0)
            {
                return false;
            }
        }
        foreach (var address in addresses)
        {
            if (address.Address % 16 != 0)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>y [tokens, n] = x [tokens, k] · w [n, k]ᵀ + low [tokens, r] · b [n, r]ᵀ.</summary>
    [KernelEntry(Module, "lora_forward_bf16")]
    public static void ForwardBF16(IKernelLauncher launcher, DevicePtr x, DevicePtr w, DevicePtr low, DevicePtr b, DevicePtr y, int tokens, int n, int k, int r)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        const string entry = "lora_forward_bf16";
        CheckSizes(entry, tokens, n, k, r);
        KernelArguments.Aligned16(entry, x, nameof(x));
        KernelArguments.Aligned16(entry, w, nameof(w));
        KernelArguments.Aligned16(entry, low, nameof(low));
        KernelArguments.Aligned16(entry, b, nameof(b));
        void** args = stackalloc void*[9];
        args[0] = &x;
        args[1] = &w;
        args[2] = &low;
        args[3] = &b;
        args[4] = &y;
        args[5] = &tokens;
        args[6] = &n;
        args[7] = &k;
        args[8] = &r;
        launcher.Launch(Module, "lora_forward_bf16", new LaunchShape((n + Tile - 1) / Tile, Threads, SharedBytes, (tokens + Tile - 1) / Tile), args);
    }

    /// <summary>
    /// dx [tokens, k] = dy [tokens, n] · w [n, k] + drop(dlow [tokens, r] · a [r, k]), added to dx when <paramref name="accumulate"/>
    /// is 1; drop keeps element i (its index in dx) when <see cref="Backends.DropoutKey"/>'s mask does (seed, counter words hi0/hi1,
    /// <paramref name="threshold"/>) and scales it by <paramref name="keepScale"/>; threshold 0 and scale 1 keep all.
    /// </summary>
    [KernelEntry(Module, "lora_backward_dx_bf16")]
    public static void BackwardDxBF16(IKernelLauncher launcher, DevicePtr dy, DevicePtr w, DevicePtr dlow, DevicePtr a, DevicePtr dx, int tokens, int n, int k, int r, int accumulate,
        ulong seed, uint hi0, uint hi1, uint threshold, float keepScale)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        const string entry = "lora_backward_dx_bf16";
        CheckSizes(entry, tokens, n, k, r);
        KernelArguments.Aligned16(entry, dy, nameof(dy));
        KernelArguments.Aligned16(entry, w, nameof(w));
        KernelArguments.Aligned16(entry, dlow, nameof(dlow));
        KernelArguments.Aligned16(entry, a, nameof(a));
        void** args = stackalloc void*[15];
        args[0] = &dy;
        args[1] = &w;
        args[2] = &dlow;
        args[3] = &a;
        args[4] = &dx;
        args[5] = &tokens;
        args[6] = &n;
        args[7] = &k;
        args[8] = &r;
        args[9] = &accumulate;
        args[10] = &seed;
        args[11] = &hi0;
        args[12] = &hi1;
        args[13] = &threshold;
        args[14] = &keepScale;
        launcher.Launch(Module, "lora_backward_dx_bf16", new LaunchShape((k + Tile - 1) / Tile, Threads, SharedBytes, (tokens + Tile - 1) / Tile), args);
    }

    /// <summary>tokens ≥ 1, and n, k and r (the row lengths of the tensors the kernels copy with cp.async) multiples of 8.</summary>
    private static void CheckSizes(string entry, int tokens, int n, int k, int r)
    {
        if (tokens < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, $"{entry} needs tokens ≥ 1");
        }
        KernelArguments.MultipleOf8(entry, n, nameof(n));
        KernelArguments.MultipleOf8(entry, k, nameof(k));
        KernelArguments.MultipleOf8(entry, r, nameof(r));
    }
}
