namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/attention.cu: causal grouped-query flash attention, bf16 q/k/v/out, fp32 lse
/// [batch, qHeads, seqLen]; one entry per head dimension (64, 128), <see cref="Forward"/> picks it.
/// </summary>
public static unsafe class AttentionKernels
{
    private const string Module = "attention";
    private const int BlockRows = 64;
    private const int Threads = 128;

    /// <summary>The head dimensions there are kernels for.</summary>
    public static bool Supports(int headDim) => headDim is 64 or 128;

    /// <summary>The forward for <paramref name="headDim"/> (64 or 128; others are not supported yet).</summary>
    public static void Forward(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr output, DevicePtr lse, int batch, int seqLen, int qHeads, int kvHeads, int headDim, float scale)
    {
        switch (headDim)
        {
            case 64: ForwardD64BF16(launcher, q, k, v, output, lse, batch, seqLen, qHeads, kvHeads, scale); break;
            case 128: ForwardD128BF16(launcher, q, k, v, output, lse, batch, seqLen, qHeads, kvHeads, scale); break;
            default: throw new NotSupportedException($"attention kernels exist for head dimensions 64 and 128, not {headDim}");
        }
    }

    [KernelEntry(Module, "attention_forward_d64_bf16")]
    public static void ForwardD64BF16(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr output, DevicePtr lse, int batch, int seqLen, int qHeads, int kvHeads, float scale)
        => Launch(launcher, "attention_forward_d64_bf16", 64, q, k, v, output, lse, batch, seqLen, qHeads, kvHeads, scale);

    [KernelEntry(Module, "attention_forward_d128_bf16")]
    public static void ForwardD128BF16(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr output, DevicePtr lse, int batch, int seqLen, int qHeads, int kvHeads, float scale)
        => Launch(launcher, "attention_forward_d128_bf16", 128, q, k, v, output, lse, batch, seqLen, qHeads, kvHeads, scale);

    /// <summary>Q, K and V tiles of 64 rows, each row padded by 8 elements (16 bytes).</summary>
    private static int SharedBytes(int headDim) => 3 * BlockRows * (headDim + 8) * sizeof(ushort);

    private static void Launch(IKernelLauncher launcher, string entry, int headDim, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr output, DevicePtr lse,
        int batch, int seqLen, int qHeads, int kvHeads, float scale)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        if (batch < 1 || seqLen < 1 || kvHeads < 1 || qHeads % kvHeads != 0)
        {
            throw new ArgumentException($"attention needs batch, seqLen and kvHeads ≥ 1 and qHeads ({qHeads}) a multiple of kvHeads ({kvHeads})");
        }
        void** args = stackalloc void*[10];
        args[0] = &q;
        args[1] = &k;
        args[2] = &v;
        args[3] = &output;
        args[4] = &lse;
        args[5] = &batch;
        args[6] = &seqLen;
        args[7] = &qHeads;
        args[8] = &kvHeads;
        args[9] = &scale;
        launcher.Launch(Module, entry, new LaunchShape((seqLen + BlockRows - 1) / BlockRows, Threads, SharedBytes(headDim), qHeads, batch), args);
    }
}
