using System.Numerics;
using System.Runtime.InteropServices;
using CudaFinetune.Tensors;

namespace CudaFinetune.Distributed;

/// <summary>
/// In-process ranks on threads, for the CPU backend's host tensors (F32 or F64): each rank posts its tensor, a barrier
/// lets all see them, and each rank reads what it needs straight from the others' memory. Sums add the ranks in order
/// 0, 1, …, W−1 for every element, so results are bitwise deterministic and equal on every rank. A rank that does not
/// arrive within <see cref="Timeout"/> fails every waiting rank with a <see cref="TimeoutException"/> that says so;
/// ranks that pass tensors of different dtypes or sizes all get an <see cref="ArgumentException"/>; after
/// <see cref="Abort"/> every wait ends in a <see cref="RankAbortedException"/>.
/// </summary>
public sealed class ThreadProcessGroup : IProcessGroup
{
    private readonly Shared _shared;

    private ThreadProcessGroup(Shared shared, int rank)
    {
        _shared = shared;
        Rank = rank;
    }

    /// <summary>How long a collective waits for the slowest rank unless told otherwise.</summary>
    public static TimeSpan DefaultTimeout { get; } = TimeSpan.FromMinutes(10);

    /// <summary>How long a collective waits for the slowest rank.</summary>
    public TimeSpan Timeout => _shared.Timeout;

    public int Rank { get; }

    public int WorldSize => _shared.WorldSize;

    /// <summary>The <paramref name="worldSize"/> ranks of one group, one per thread that will use it.</summary>
    /// <param name="timeout">how long a collective waits for the slowest rank (default <see cref="DefaultTimeout"/>)</param>
    public static ThreadProcessGroup[] Create(int worldSize, TimeSpan? timeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        var shared = new Shared(worldSize, timeout ?? DefaultTimeout);
        return [.. Enumerable.Range(0, worldSize).Select(rank => new ThreadProcessGroup(shared, rank))];
    }

    public void AllReduceSum(Tensor buffer)
    {
        // Rank r sums its slice of every element range into the shared result; then every rank copies the whole result.
        long n = buffer.ElementCount;
        Post(buffer, n);
        var result = _shared.Result(buffer.DType, n);
        var (start, count) = Slice(n, Rank);
        SumInto(result, start, count, start);
        Arrive("all-reduce");
        CopyFrom(result, buffer, 0, n);
        Arrive("all-reduce");
    }

    public void ReduceScatterSum(Tensor input, Tensor output)
    {
        long shard = output.ElementCount;
        if (input.ElementCount != shard * WorldSize || input.DType != output.DType)
        {
            throw new ArgumentException($"reduce-scatter: input {input} must hold {WorldSize} shards of output {output}");
        }
        Post(input, input.ElementCount);
        var result = _shared.Result(input.DType, input.ElementCount);
        SumInto(result, Rank * shard, shard, Rank * shard);
        CopyFrom(result, output, Rank * shard, shard);
        Arrive("reduce-scatter");
    }

    public void AllGather(Tensor input, Tensor output)
    {
        long shard = input.ElementCount;
        if (output.ElementCount != shard * WorldSize || input.DType != output.DType)
        {
            throw new ArgumentException($"all-gather: output {output} must hold {WorldSize} copies of input {input}");
        }
        Post(input, shard);
        long size = input.DType.SizeInBytes();
        for (int r = 0; r < WorldSize; r++)
        {
            Bytes(_shared.Posted[r]!, 0, shard * size).CopyTo(Bytes(output, r * shard * size, shard * size));
        }
        Arrive("all-gather");
    }

    public void Broadcast(Tensor buffer, int root)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, WorldSize);
        Post(buffer, buffer.ElementCount);
        if (Rank != root)
        {
            long bytes = buffer.ElementCount * buffer.DType.SizeInBytes();
            Bytes(_shared.Posted[root]!, 0, bytes).CopyTo(Bytes(buffer, 0, bytes));
        }
        Arrive("broadcast");
    }

    public void Barrier() => Arrive("barrier");

    public void Abort() => _shared.Abort.Cancel();

    /// <summary>Every collective here is complete when it returns.</summary>
    public void WaitForCollectives()
    {
    }

    public void Dispose()
    {
    }

    /// <summary>Publishes this rank's tensor and waits for every rank's; checks that they agree.</summary>
    private void Post(Tensor tensor, long count)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Storage is not HostStorage || tensor.DType is not (DType.F32 or DType.F64))
        {
            throw new ArgumentException($"thread ranks exchange host F32 or F64 tensors, not {tensor}");
        }
        _shared.Posted[Rank] = tensor;
        Arrive("a collective");
        for (int r = 0; r < WorldSize; r++)
        {
            var other = _shared.Posted[r]!;
            if (other.DType != tensor.DType || other.ElementCount != count)
            {
                // Every rank sees the same posts, so every rank throws.
                throw new ArgumentException($"ranks disagree in a collective: rank {r} passed {other}, rank {Rank} {tensor}");
            }
        }
    }

    private void Arrive(string what)
    {
        bool arrived;
        try
        {
            arrived = _shared.Barrier.SignalAndWait(Timeout, _shared.Abort.Token);
        }
        catch (OperationCanceledException)
        {
            throw new RankAbortedException($"rank {Rank} of {WorldSize}: another rank stopped, so {what} cannot complete");
        }
        if (!arrived)
        {
            throw new TimeoutException($"rank {Rank} of {WorldSize} waited {Timeout.TotalSeconds:0} s in {what} for a rank that never arrived");
        }
    }

    private (long Start, long Count) Slice(long n, int rank)
    {
        long per = (n + WorldSize - 1) / WorldSize, start = Math.Min(n, rank * per);
        return (start, Math.Min(per, n - start));
    }

    /// <summary>result[at..at+count) = Σ over ranks, in rank order, of posted[r][start..start+count).</summary>
    private void SumInto(Array result, long start, long count, long at)
    {
        if (result is float[] f)
        {
            Sum<float>(f, start, count, at);
        }
        else
        {
            Sum((double[])result, start, count, at);
        }
    }

    private void Sum<T>(T[] result, long start, long count, long at)
        where T : unmanaged, INumber<T>
    {
        var target = result.AsSpan((int)at, (int)count);
        _shared.Posted[0]!.HostSpan<T>().Slice((int)start, (int)count).CopyTo(target);
        for (int r = 1; r < WorldSize; r++)
        {
            var source = _shared.Posted[r]!.HostSpan<T>().Slice((int)start, (int)count);
            for (int i = 0; i < target.Length; i++)
            {
                target[i] += source[i];
            }
        }
    }

    private static void CopyFrom(Array result, Tensor destination, long start, long count)
    {
        if (result is float[] f)
        {
            f.AsSpan((int)start, (int)count).CopyTo(destination.HostSpan<float>());
        }
        else
        {
            ((double[])result).AsSpan((int)start, (int)count).CopyTo(destination.HostSpan<double>());
        }
    }

    private static Span<byte> Bytes(Tensor tensor, long offset, long count)
    {
        return tensor.DType == DType.F32
            ? MemoryMarshal.AsBytes(tensor.HostSpan<float>()).Slice((int)offset, (int)count)
            : MemoryMarshal.AsBytes(tensor.HostSpan<double>()).Slice((int)offset, (int)count);
    }

    /// <summary>What the ranks of one group share: the barrier, each rank's posted tensor, the reduction result buffer.</summary>
    private sealed class Shared(int worldSize, TimeSpan timeout)
    {
        public TimeSpan Timeout { get; } = timeout;

        private float[] _f32 = [];
        private double[] _f64 = [];

        public int WorldSize { get; } = worldSize;

        public Barrier Barrier { get; } = new(worldSize);

        /// <summary>Cancelled by a rank that failed: every wait ends.</summary>
        public CancellationTokenSource Abort { get; } = new();

        public Tensor?[] Posted { get; } = new Tensor?[worldSize];

        /// <summary>The result buffer for n elements; every rank asks for the same size after the same barrier, and the first to grow it wins.</summary>
        public Array Result(DType dtype, long n)
        {
            lock (this)
            {
                if (dtype == DType.F32)
                {
                    if (_f32.Length < n)
                    {
                        _f32 = new float[n];
                    }
                    return _f32;
                }
                if (_f64.Length < n)
                {
                    _f64 = new double[n];
                }
                return _f64;
            }
        }
    }
}
