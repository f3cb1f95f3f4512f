using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>
/// Launchers of kernels/decode_attention.cu: n query rows at positions past.. against a key/value cache (batch 1), fp32 or
/// bf16 (the <see cref="DType"/> argument).
/// </summary>
public static unsafe class DecodeAttentionKernels
{
    private const string Module = "decode_attention";
    private const int Threads = 128;

    /// <summary>The most cached positions one call can attend to (their scores fill the dynamic shared memory).</summary>
    public const int MaxKeys = LaunchShape.MaxDynamicSharedBytes / sizeof(float);

    private static readonly DTypeEntries Entries = new(Module, "decode_attention");

    [KernelEntry(Module, "decode_attention_f32")]
    [KernelEntry(Module, "decode_attention_bf16")]
    public static void Attend(IKernelLauncher launcher, DType dtype, DevicePtr q, DevicePtr kCache, DevicePtr vCache, DevicePtr output, int past, int rows, int qHeads, int kvHeads,
        int headDim, float scale)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        if (rows < 1 || past < 0 || past + rows > MaxKeys || kvHeads < 1 || qHeads % kvHeads != 0 || headDim < 1)
        {
            throw new ArgumentException($"decode attention: {rows} rows after {past} (at most {MaxKeys} positions), {qHeads}/{kvHeads} heads of {headDim}");
        }
        void** args = stackalloc void*[10];
        args[0] = &q;
        args[1] = &kCache;
        args[2] = &vCache;
        args[3] = &output;
        args[4] = &past;
        args[5] = &rows;
        args[6] = &qHeads;
        args[7] = &kvHeads;
        args[8] = &headDim;
        args[9] = &scale;
        Entries.Launch(launcher, dtype, new LaunchShape(rows, Threads, (past + rows) * sizeof(float), qHeads), args);
    }
}
