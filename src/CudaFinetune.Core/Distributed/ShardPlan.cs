namespace CudaFinetune.Distributed;

/// <summary>One stretch of a parameter inside a rank's shard: elements [ParameterOffset, +Count) of the parameter sit at [ShardOffset, +Count) of the shard.</summary>
public readonly record struct ShardSegment(int Parameter, long ParameterOffset, long ShardOffset, long Count);

/// <summary>
/// How ZeRO splits the trained parameters among ranks: the parameters, in model order, laid end to end as one flat
/// vector, padded to a multiple of WorldSize × <see cref="Alignment"/> elements, and cut into equal shards; rank r owns
/// flat elements [r·ShardSize, (r+1)·ShardSize). The same plan serves the gradient reduce-scatter (a flat gradient
/// buffer), the optimizer (masters and moments for the shard only), the parameter all-gather, and sharded checkpoints,
/// which <see cref="Reshard{T}"/> maps onto another world size.
/// </summary>
public sealed class ShardPlan
{
    private readonly long[] _starts;
    private readonly ShardSegment[][] _segments;

    private ShardPlan(long[] counts, int worldSize, int alignment)
    {
        WorldSize = worldSize;
        Alignment = alignment;
        ParameterCounts = counts;
        _starts = new long[counts.Length + 1];
        for (int p = 0; p < counts.Length; p++)
        {
            _starts[p + 1] = _starts[p] + counts[p];
        }
        ElementCount = _starts[^1];
        long quantum = (long)worldSize * alignment;
        FlatSize = Math.Max(quantum, (ElementCount + quantum - 1) / quantum * quantum);
        ShardSize = FlatSize / worldSize;
        _segments = [.. Enumerable.Range(0, worldSize).Select(SegmentsOf)];
    }

    public int WorldSize { get; }

    /// <summary>Shards start at multiples of this many elements (so device copies of a shard stay aligned).</summary>
    public int Alignment { get; }

    /// <summary>Elements of each parameter, in model order.</summary>
    public IReadOnlyList<long> ParameterCounts { get; }

    /// <summary>Elements of all parameters together (without padding).</summary>
    public long ElementCount { get; }

    /// <summary>The flat vector's length: <see cref="ElementCount"/> padded to a multiple of WorldSize × Alignment.</summary>
    public long FlatSize { get; }

    /// <summary>Elements per shard; every rank's shard has this size (the last ones may end in padding).</summary>
    public long ShardSize { get; }

    /// <param name="parameterCounts">Elements of each trained parameter, in model order.</param>
    public static ShardPlan Create(IReadOnlyList<long> parameterCounts, int worldSize, int alignment = 64)
    {
        ArgumentNullException.ThrowIfNull(parameterCounts);
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(alignment, 1);
        if (parameterCounts.Any(c => c < 0))
        {
            throw new ArgumentException("parameter sizes cannot be negative", nameof(parameterCounts));
        }
        return new ShardPlan([.. parameterCounts], worldSize, alignment);
    }

    /// <summary>Where parameter <paramref name="parameter"/> starts in the flat vector.</summary>
    public long FlatOffset(int parameter) => _starts[parameter];

    /// <summary>The parameter stretches in rank <paramref name="rank"/>'s shard, in flat order.</summary>
    public IReadOnlyList<ShardSegment> Segments(int rank) => _segments[rank];

    private ShardSegment[] SegmentsOf(int rank)
    {
        long begin = rank * ShardSize, end = begin + ShardSize;
        var segments = new List<ShardSegment>();
        for (int p = 0; p < ParameterCounts.Count; p++)
        {
            long from = Math.Max(begin, _starts[p]), to = Math.Min(end, _starts[p + 1]);
            if (from < to)
            {
                segments.Add(new ShardSegment(p, from - _starts[p], from - begin, to - from));
            }
        }
        return [.. segments];
    }

    /// <summary>
    /// The shards of <paramref name="to"/>, filled from the shards of this plan (the same parameters at another world size):
    /// what a resume at another world size does with a sharded optimizer state. Padding stays zero.
    /// </summary>
    public T[][] Reshard<T>(IReadOnlyList<T[]> shards, ShardPlan to)
    {
        ArgumentNullException.ThrowIfNull(shards);
        ArgumentNullException.ThrowIfNull(to);
        if (!to.ParameterCounts.SequenceEqual(ParameterCounts) || shards.Count != WorldSize || shards.Any(s => s.LongLength != ShardSize))
        {
            throw new ArgumentException($"reshard: {shards.Count} shards do not fit this plan ({WorldSize} × {ShardSize}) or the plans' parameters differ");
        }
        var result = Enumerable.Range(0, to.WorldSize).Select(_ => new T[to.ShardSize]).ToArray();
        for (long flat = 0; flat < ElementCount;)
        {
            int sourceRank = (int)(flat / ShardSize), targetRank = (int)(flat / to.ShardSize);
            long sourceEnd = (sourceRank + 1) * ShardSize, targetEnd = (targetRank + 1) * to.ShardSize;
            long count = Math.Min(Math.Min(sourceEnd, targetEnd), ElementCount) - flat;
            Array.Copy(shards[sourceRank], flat - sourceRank * ShardSize, result[targetRank], flat - targetRank * to.ShardSize, count);
            flat += count;
        }
        return result;
    }
}
