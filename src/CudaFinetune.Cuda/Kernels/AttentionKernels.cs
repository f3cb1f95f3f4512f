namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/attention.cu: causal grouped-query flash attention, bf16 q/k/v/out, fp32 lse
/// [batch, qHeads, seqLen], fp32 delta (Σ dO·O per row, same layout); one entry per head dimension (32, 64, 128),
/// <see cref="Forward"/> and <see cref="Backward"/> pick it.
/// </summary>
public static unsafe class AttentionKernels
{
    private const string Module = "attention";
    private const int BlockRows = 64;
    private const int Threads = 128;

    /// <summary>The head dimensions there are kernels for.</summary>
    public static bool Supports(int headDim) => headDim is 32 or 64 or 128;

    /// <summary>The forward for <paramref name="headDim"/> (32, 64 or 128; others are not supported yet).</summary>
    public static void Forward(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr output, DevicePtr lse, int batch, int seqLen, int qHeads, int kvHeads, int headDim, float scale)
    {
        switch (headDim)
        {
            case 32: ForwardD32BF16(launcher, q, k, v, output, lse, batch, seqLen, qHeads, kvHeads, scale); break;
            case 64: ForwardD64BF16(launcher, q, k, v, output, lse, batch, seqLen, qHeads, kvHeads, scale); break;
            case 128: ForwardD128BF16(launcher, q, k, v, output, lse, batch, seqLen, qHeads, kvHeads, scale); break;
            default: throw new NotSupportedException($"attention kernels exist for head dimensions 32, 64 and 128, not {headDim}");
        }
    }

    /// <summary>
    /// dq, dk and dv (overwritten, bf16) of <see cref="Forward"/>, given its output and lse; <paramref name="delta"/> is
    /// fp32 scratch of batch·qHeads·seqLen elements.
    /// </summary>
    public static void Backward(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr output, DevicePtr dOutput, DevicePtr lse,
        DevicePtr delta, DevicePtr dq, DevicePtr dk, DevicePtr dv, int batch, int seqLen, int qHeads, int kvHeads, int headDim, float scale)
    {
        BackwardDeltaBF16(launcher, dOutput, output, delta, batch * seqLen, seqLen, qHeads, headDim);
        switch (headDim)
        {
            case 32:
                BackwardDkDvD32BF16(launcher, q, k, v, dOutput, lse, delta, dk, dv, batch, seqLen, qHeads, kvHeads, scale);
                BackwardDqD32BF16(launcher, q, k, v, dOutput, lse, delta, dq, batch, seqLen, qHeads, kvHeads, scale);
                break;
            case 64:
                BackwardDkDvD64BF16(launcher, q, k, v, dOutput, lse, delta, dk, dv, batch, seqLen, qHeads, kvHeads, scale);
                BackwardDqD64BF16(launcher, q, k, v, dOutput, lse, delta, dq, batch, seqLen, qHeads, kvHeads, scale);
                break;
            case 128:
                BackwardDkDvD128BF16(launcher, q, k, v, dOutput, lse, delta, dk, dv, batch, seqLen, qHeads, kvHeads, scale);
                BackwardDqD128BF16(launcher, q, k, v, dOutput, lse, delta, dq, batch, seqLen, qHeads, kvHeads, scale);
                break;
            default: throw new NotSupportedException($"attention kernels exist for head dimensions 32, 64 and 128, not {headDim}");
        }
    }

    [KernelEntry(Module, "attention_forward_d32_bf16")]
    public static void ForwardD32BF16(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr output, DevicePtr lse, int batch, int seqLen, int qHeads, int kvHeads, float scale)
        => Launch(launcher, "attention_forward_d32_bf16", 32, q, k, v, output, lse, batch, seqLen, qHeads, kvHeads, scale);

    [KernelEntry(Module, "attention_forward_d64_bf16")]
    public static void ForwardD64BF16(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr output, DevicePtr lse, int batch, int seqLen, int qHeads, int kvHeads, float scale)
        => Launch(launcher, "attention_forward_d64_bf16", 64, q, k, v, output, lse, batch, seqLen, qHeads, kvHeads, scale);

    [KernelEntry(Module, "attention_forward_d128_bf16")]
    public static void ForwardD128BF16(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr output, DevicePtr lse, int batch, int seqLen, int qHeads, int kvHeads, float scale)
        => Launch(launcher, "attention_forward_d128_bf16", 128, q, k, v, output, lse, batch, seqLen, qHeads, kvHeads, scale);

    [KernelEntry(Module, "attention_backward_delta_bf16")]
    public static void BackwardDeltaBF16(IKernelLauncher launcher, DevicePtr dOutput, DevicePtr output, DevicePtr delta, int tokens, int seqLen, int qHeads, int headDim)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        void** args = stackalloc void*[7];
        args[0] = &dOutput;
        args[1] = &output;
        args[2] = &delta;
        args[3] = &tokens;
        args[4] = &seqLen;
        args[5] = &qHeads;
        args[6] = &headDim;
        const int rowsPerBlock = Threads / 32;
        long rows = (long)tokens * qHeads;
        launcher.Launch(Module, "attention_backward_delta_bf16", new LaunchShape(checked((int)((rows + rowsPerBlock - 1) / rowsPerBlock)), Threads), args);
    }

    [KernelEntry(Module, "attention_backward_dkdv_d32_bf16")]
    public static void BackwardDkDvD32BF16(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr dOutput, DevicePtr lse, DevicePtr delta,
        DevicePtr dk, DevicePtr dv, int batch, int seqLen, int qHeads, int kvHeads, float scale)
        => LaunchBackward(launcher, "attention_backward_dkdv_d32_bf16", 32, kvHeads, q, k, v, dOutput, lse, delta, dk, dv, batch, seqLen, qHeads, kvHeads, scale);

    [KernelEntry(Module, "attention_backward_dkdv_d64_bf16")]
    public static void BackwardDkDvD64BF16(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr dOutput, DevicePtr lse, DevicePtr delta,
        DevicePtr dk, DevicePtr dv, int batch, int seqLen, int qHeads, int kvHeads, float scale)
        => LaunchBackward(launcher, "attention_backward_dkdv_d64_bf16", 64, kvHeads, q, k, v, dOutput, lse, delta, dk, dv, batch, seqLen, qHeads, kvHeads, scale);

    [KernelEntry(Module, "attention_backward_dkdv_d128_bf16")]
    public static void BackwardDkDvD128BF16(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr dOutput, DevicePtr lse, DevicePtr delta,
        DevicePtr dk, DevicePtr dv, int batch, int seqLen, int qHeads, int kvHeads, float scale)
        => LaunchBackward(launcher, "attention_backward_dkdv_d128_bf16", 128, kvHeads, q, k, v, dOutput, lse, delta, dk, dv, batch, seqLen, qHeads, kvHeads, scale);

    [KernelEntry(Module, "attention_backward_dq_d32_bf16")]
    public static void BackwardDqD32BF16(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr dOutput, DevicePtr lse, DevicePtr delta,
        DevicePtr dq, int batch, int seqLen, int qHeads, int kvHeads, float scale)
        => LaunchBackward(launcher, "attention_backward_dq_d32_bf16", 32, qHeads, q, k, v, dOutput, lse, delta, dq, null, batch, seqLen, qHeads, kvHeads, scale);

    [KernelEntry(Module, "attention_backward_dq_d64_bf16")]
    public static void BackwardDqD64BF16(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr dOutput, DevicePtr lse, DevicePtr delta,
        DevicePtr dq, int batch, int seqLen, int qHeads, int kvHeads, float scale)
        => LaunchBackward(launcher, "attention_backward_dq_d64_bf16", 64, qHeads, q, k, v, dOutput, lse, delta, dq, null, batch, seqLen, qHeads, kvHeads, scale);

    [KernelEntry(Module, "attention_backward_dq_d128_bf16")]
    public static void BackwardDqD128BF16(IKernelLauncher launcher, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr dOutput, DevicePtr lse, DevicePtr delta,
        DevicePtr dq, int batch, int seqLen, int qHeads, int kvHeads, float scale)
        => LaunchBackward(launcher, "attention_backward_dq_d128_bf16", 128, qHeads, q, k, v, dOutput, lse, delta, dq, null, batch, seqLen, qHeads, kvHeads, scale);

    /// <summary>A Q tile and two K and two V tiles (double-buffered) of 64 rows, each row padded by 8 elements (16 bytes).</summary>
    private static int SharedBytes(int headDim) => 5 * BlockRows * (headDim + 8) * sizeof(ushort);

    /// <summary>dK/dV: four 64-row bf16 tiles (K, V, Q, dO), 64 lse and 64 delta values.</summary>
    private static int DkDvSharedBytes(int headDim) => 4 * BlockRows * (headDim + 8) * sizeof(ushort) + 2 * BlockRows * sizeof(float);

    /// <summary>dQ: Q and dO tiles and two buffers of K and V tiles (double-buffered), 64 rows each.</summary>
    private static int DqSharedBytes(int headDim) => 6 * BlockRows * (headDim + 8) * sizeof(ushort);

    /// <summary>
    /// dK/dV (a block per 64 keys of a KV head: <paramref name="gridHeads"/> = kvHeads, two outputs) or dQ (a block per 64 queries
    /// of a query head: gridHeads = qHeads, <paramref name="second"/> null).
    /// </summary>
    private static void LaunchBackward(IKernelLauncher launcher, string entry, int headDim, int gridHeads, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr dOutput,
        DevicePtr lse, DevicePtr delta, DevicePtr first, DevicePtr? second, int batch, int seqLen, int qHeads, int kvHeads, float scale)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        CheckHeads(batch, seqLen, qHeads, kvHeads);
        CheckAligned(entry, q, k, v);
        KernelArguments.Aligned16(entry, dOutput, nameof(dOutput));
        DevicePtr secondValue = second.GetValueOrDefault();
        void** args = stackalloc void*[14];
        int n = 0;
        args[n++] = &q;
        args[n++] = &k;
        args[n++] = &v;
        args[n++] = &dOutput;
        args[n++] = &lse;
        args[n++] = &delta;
        args[n++] = &first;
        if (second.HasValue)
        {
            args[n++] = &secondValue;
        }
        args[n++] = &batch;
        args[n++] = &seqLen;
        args[n++] = &qHeads;
        args[n++] = &kvHeads;
        args[n] = &scale;
        launcher.Launch(Module, entry, new LaunchShape((seqLen + BlockRows - 1) / BlockRows, Threads, second.HasValue ? DkDvSharedBytes(headDim) : DqSharedBytes(headDim), gridHeads, batch), args);
    }

    private static void CheckHeads(int batch, int seqLen, int qHeads, int kvHeads)
    {
        if (batch < 1 || seqLen < 1 || kvHeads < 1 || qHeads % kvHeads != 0)
        {
            throw new ArgumentException($"attention needs batch, seqLen and kvHeads ≥ 1 and qHeads ({qHeads}) a multiple of kvHeads ({kvHeads})");
        }
    }

    /// <summary>
    /// The tensors the kernels stage in shared memory with cp.async are 16-byte aligned (their rows, heads·headDim bf16, and
    /// head offsets, headDim bf16, are whole 16-byte pieces for every head dimension there is a kernel for).
    /// </summary>
    private static void CheckAligned(string entry, DevicePtr q, DevicePtr k, DevicePtr v)
    {
        KernelArguments.Aligned16(entry, q, nameof(q));
        KernelArguments.Aligned16(entry, k, nameof(k));
        KernelArguments.Aligned16(entry, v, nameof(v));
    }

    private static void Launch(IKernelLauncher launcher, string entry, int headDim, DevicePtr q, DevicePtr k, DevicePtr v, DevicePtr output, DevicePtr lse,
        int batch, int seqLen, int qHeads, int kvHeads, float scale)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        CheckHeads(batch, seqLen, qHeads, kvHeads);
        CheckAligned(entry, q, k, v);
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
