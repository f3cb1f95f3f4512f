using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Numerics;

namespace CudaFinetune.Cuda.Benchmarking;

/// <summary>
/// Random bf16 q, k, v and dO on a device, and the buffers flash attention's forward and backward write: what
/// <c>bench attention</c> and the GPU kernel benchmarks time. FLOPs count as FlashAttention's benchmarks do (and
/// benchmarks/gpu/reference.py for PyTorch): forward 4·B·H·T²·D, halved for causal; backward 2.5× the forward.
/// </summary>
public sealed class AttentionWorkload : IDisposable
{
    private readonly IDevice _device;
    private readonly List<DeviceBuffer> _buffers = [];
    private readonly DevicePtr _q, _k, _v, _output, _dOutput, _lse, _delta, _dq, _dk, _dv;

    public AttentionWorkload(IDevice device, int batch, int seqLen, int qHeads, int kvHeads, int headDim, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (!AttentionKernels.Supports(headDim))
        {
            throw new ArgumentException($"no attention kernel for head size {headDim}", nameof(headDim));
        }
        _device = device;
        (Batch, SeqLen, QueryHeads, KvHeads, HeadDim) = (batch, seqLen, qHeads, kvHeads, headDim);
        var random = new Random(seed);
        long qCount = (long)batch * seqLen * qHeads * headDim, kvCount = (long)batch * seqLen * kvHeads * headDim, rows = (long)batch * qHeads * seqLen;
        _q = Random(random, qCount);
        _k = Random(random, kvCount);
        _v = Random(random, kvCount);
        _dOutput = Random(random, qCount);
        _output = Allocate(qCount * sizeof(ushort));
        _dq = Allocate(qCount * sizeof(ushort));
        _dk = Allocate(kvCount * sizeof(ushort));
        _dv = Allocate(kvCount * sizeof(ushort));
        _lse = Allocate(rows * sizeof(float));
        _delta = Allocate(rows * sizeof(float));
        Forward();
        device.Synchronize();
    }

    public int Batch { get; }
    public int SeqLen { get; }
    public int QueryHeads { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }

    public float Scale => 1 / MathF.Sqrt(HeadDim);

    public double ForwardFlops => 4.0 * Batch * QueryHeads * (double)SeqLen * SeqLen * HeadDim / 2;

    public double BackwardFlops => 2.5 * ForwardFlops;

    /// <summary>Enqueues the forward (output and lse).</summary>
    /// <summary>Seconds per call of <paramref name="enqueue"/> (<see cref="Forward"/> or <see cref="Backward"/>): one warm-up, then <paramref name="repeat"/> calls waited for together.</summary>
    public double SecondsPerCall(Action enqueue, int repeat)
    {
        ArgumentNullException.ThrowIfNull(enqueue);
        ArgumentOutOfRangeException.ThrowIfLessThan(repeat, 1);
        enqueue();
        _device.Synchronize();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < repeat; i++)
        {
            enqueue();
        }
        _device.Synchronize();
        return clock.Elapsed.TotalSeconds / repeat;
    }

    public void Forward()
        => AttentionKernels.Forward(_device, _q, _k, _v, _output, _lse, Batch, SeqLen, QueryHeads, KvHeads, HeadDim, Scale);

    /// <summary>Enqueues the backward (dq, dk, dv) from the forward's output and lse.</summary>
    public void Backward()
        => AttentionKernels.Backward(_device, _q, _k, _v, _output, _dOutput, _lse, _delta, _dq, _dk, _dv, Batch, SeqLen, QueryHeads, KvHeads, HeadDim, Scale);

    private DevicePtr Allocate(long bytes)
    {
        var buffer = _device.Memory.Allocate(bytes);
        _buffers.Add(buffer);
        return buffer.Start;
    }

    /// <summary>Uniform values in [−1, 1) as bf16, uploaded in pieces so the host copy stays small.</summary>
    private DevicePtr Random(Random random, long count)
    {
        DevicePtr start = Allocate(count * sizeof(ushort));
        var piece = new ushort[Math.Min(count, 1 << 20)];
        for (long done = 0; done < count; done += piece.Length)
        {
            int n = (int)Math.Min(piece.Length, count - done);
            for (int i = 0; i < n; i++)
            {
                piece[i] = HalfPrecision.ToBFloat16((float)(random.NextDouble() * 2 - 1));
            }
            _device.Upload<ushort>(piece.AsSpan(0, n), start.Offset(done * sizeof(ushort))); // staged at once: `piece` may be refilled
        }
        return start;
    }

    public void Dispose()
    {
        foreach (var buffer in _buffers)
        {
            _device.Memory.Free(buffer);
        }
        _buffers.Clear();
    }
}
