namespace CudaFinetune.Distributed;

/// <summary>One stretch of a parameter inside a rank's shard: elements [ParameterOffset, +Count) of the parameter sit at [ShardOffset, +Count) of the shard.</summary>
public readonly record struct ShardSegment(int Parameter, long ParameterOffset, long ShardOffset, long Count);

/// <summary>
/// A run of consecutive parameters that is reduced (and gathered) in one collective: flat elements [FlatStart, +Size),
/// Size a multiple of WorldSize × alignment; rank r owns its part r, [FlatStart + r·PartSize, +PartSize), which sits at
/// [ShardStart, +PartSize) of the rank's shard. <see cref="First"/> and <see cref="Count"/> index the plan's layout order.
/// </summary>
public readonly record struct ShardBucket(long FlatStart, long Size, long ShardStart, long PartSize, int First, int Count);

/// <summary>
/// How ZeRO splits the trained parameters among ranks. The parameters, in <see cref="Order"/> (the order the backward
/// pass finishes their gradients), are laid end to end as one flat vector cut into buckets of about
/// <c>bucketElements</c>; each bucket is padded to a multiple of WorldSize × <see cref="Alignment"/> and split into equal
/// parts, one per rank, and a rank's shard is its part of every bucket. A bucket's gradients can be reduce-scattered as
/// soon as the backward pass is past its parameters, overlapping the rest of the pass. The same plan serves the
/// gradient reduce-scatter, the optimizer (masters and moments of the shard only), the parameter all-gather, and
/// sharded checkpoints (<see cref="Segments"/>); <see cref="Reshard{T}"/> maps shards onto another plan.
/// </summary>
public sealed class ShardPlan
{
    private readonly long[] _flatOffsets;
    private readonly ShardSegment[][] _segments;

    private ShardPlan(long[] counts, int worldSize, int alignment, long bucketElements, int[] order)
    {
        WorldSize = worldSize;
        Alignment = alignment;
        ParameterCounts = counts;
        Order = order;
        ElementCount = counts.Sum();
        _flatOffsets = new long[counts.Length];
        long quantum = (long)worldSize * alignment;
        var buckets = new List<ShardBucket>();
        long flat = 0, shard = 0;
        for (int first = 0; first < order.Length || buckets.Count == 0;)
        {
            int end = first;
            long size = 0;
            while (end < order.Length && (end == first || size + counts[order[end]] <= bucketElements))
            {
                _flatOffsets[order[end]] = flat + size;
                size += counts[order[end]];
                end++;
            }
            long padded = Math.Max(quantum, (size + quantum - 1) / quantum * quantum);
            buckets.Add(new ShardBucket(flat, padded, shard, padded / worldSize, first, end - first));
            flat += padded;
            shard += padded / worldSize;
            first = end;
        }
        Buckets = buckets;
        FlatSize = flat;
        ShardSize = shard;
        _segments = [.. Enumerable.Range(0, worldSize).Select(SegmentsOf)];
    }

    public int WorldSize { get; }

    /// <summary>Parts start at multiples of this many elements (so device copies of a part stay aligned).</summary>
    public int Alignment { get; }

    /// <summary>Elements of each parameter, in model order.</summary>
    public IReadOnlyList<long> ParameterCounts { get; }

    /// <summary>The parameters (model indices) in the order they are laid out.</summary>
    public IReadOnlyList<int> Order { get; }

    /// <summary>The buckets, in layout order.</summary>
    public IReadOnlyList<ShardBucket> Buckets { get; }

    /// <summary>Elements of all parameters together (without padding).</summary>
    public long ElementCount { get; }

    /// <summary>The flat vector's length: every bucket with its padding.</summary>
    public long FlatSize { get; }

    /// <summary>Elements per shard (every rank's shard has this size): its part of every bucket.</summary>
    public long ShardSize { get; }

    /// <param name="parameterCounts">Elements of each trained parameter, in model order.</param>
    /// <param name="bucketElements">Elements per bucket at most (a larger parameter is a bucket of its own); the default makes one bucket.</param>
    /// <param name="order">The layout order of the parameters (default: model order).</param>
    public static ShardPlan Create(IReadOnlyList<long> parameterCounts, int worldSize, int alignment = 64, long bucketElements = long.MaxValue, IReadOnlyList<int>? order = null)
    {
        ArgumentNullException.ThrowIfNull(parameterCounts);
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(alignment, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketElements, 1);
        if (parameterCounts.Any(c => c < 0))
        {
            throw new ArgumentException("parameter sizes cannot be negative", nameof(parameterCounts));
        }
        int[] layout = order is null ? [.. Enumerable.Range(0, parameterCounts.Count)] : [.. order];
        if (!layout.Order().SequenceEqual(Enumerable.Range(0, parameterCounts.Count)))
        {
            throw new ArgumentException("the order must name every parameter once", nameof(order));
        }
        return new ShardPlan([.. parameterCounts], worldSize, alignment, bucketElements, layout);
    }

    /// <summary>Where parameter <paramref name="parameter"/> starts in the flat vector.</summary>
    public long FlatOffset(int parameter) => _flatOffsets[parameter];

    /// <summary>The flat position of element <paramref name="shardOffset"/> of rank <paramref name="rank"/>'s shard.</summary>
    public long FlatPosition(int rank, long shardOffset)
    {
        var bucket = Buckets.Last(b => b.ShardStart <= shardOffset);
        return bucket.FlatStart + rank * bucket.PartSize + (shardOffset - bucket.ShardStart);
    }

    /// <summary>The parameter stretches in rank <paramref name="rank"/>'s shard, in shard order.</summary>
    public IReadOnlyList<ShardSegment> Segments(int rank) => _segments[rank];

    private ShardSegment[] SegmentsOf(int rank)
    {
        var segments = new List<ShardSegment>();
        foreach (var bucket in Buckets)
        {
            long begin = bucket.FlatStart + rank * bucket.PartSize, end = begin + bucket.PartSize;
            for (int i = bucket.First; i < bucket.First + bucket.Count; i++)
            {
                int p = Order[i];
                long from = Math.Max(begin, _flatOffsets[p]), to = Math.Min(end, _flatOffsets[p] + ParameterCounts[p]);
                if (from < to)
                {
                    segments.Add(new ShardSegment(p, from - _flatOffsets[p], bucket.ShardStart + (from - begin), to - from));
                }
            }
        }
        return [.. segments];
    }

    /// <summary>
    /// The shards of <paramref name="to"/>, filled from the shards of this plan (the same parameters at another world size
    /// or bucketing): every parameter element moves from its place here to its place there. Padding stays default.
    /// </summary>
    public T[][] Reshard<T>(IReadOnlyList<T[]> shards, ShardPlan to)
    {
        ArgumentNullException.ThrowIfNull(shards);
        ArgumentNullException.ThrowIfNull(to);
        if (!to.ParameterCounts.SequenceEqual(ParameterCounts) || shards.Count != WorldSize || shards.Any(s => s.LongLength != ShardSize))
        {
            throw new ArgumentException($"reshard: {shards.Count} shards do not fit this plan ({WorldSize} × {ShardSize}) or the plans' parameters differ");
        }
        var parameters = ParameterCounts.Select(n => new T[n]).ToArray();
        for (int r = 0; r < WorldSize; r++)
        {
            foreach (var s in Segments(r))
            {
                Array.Copy(shards[r], s.ShardOffset, parameters[s.Parameter], s.ParameterOffset, s.Count);
            }
        }
        var result = Enumerable.Range(0, to.WorldSize).Select(_ => new T[to.ShardSize]).ToArray();
        for (int r = 0; r < to.WorldSize; r++)
        {
            foreach (var s in to.Segments(r))
            {
                Array.Copy(parameters[s.Parameter], s.ParameterOffset, result[r], s.ShardOffset, s.Count);
            }
        }
        return result;
    }
}
