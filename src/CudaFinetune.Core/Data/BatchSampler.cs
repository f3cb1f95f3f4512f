using CudaFinetune.Errors;

namespace CudaFinetune.Data;

/// <summary>
/// Everything a <see cref="BatchSampler"/> needs to continue exactly where it was: the seed, the
/// epoch (0-based) and how many batches of that epoch have been handed out.
/// </summary>
public readonly record struct SamplerState(ulong Seed, int Epoch, int Cursor);

/// <summary>
/// The order in which an epoch visits a <see cref="BatchPlan"/>'s batches. With shuffling the order
/// is a permutation that depends only on (seed, epoch): a Fisher–Yates shuffle driven by Philox4x32-10
/// (not System.Random, whose algorithm may change between runtimes); without, it is 0, 1, …, Count−1.
/// The whole state is a <see cref="SamplerState"/>, so a checkpoint stores three numbers and a resumed
/// run continues with exactly the same sequence.
/// </summary>
public sealed class BatchSampler
{
    private int[] _order;
    private ulong _seed;
    private int _epoch;
    private int _cursor;

    public BatchSampler(int batchCount, ulong seed, bool shuffle)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batchCount);
        BatchCount = batchCount;
        Shuffle = shuffle;
        _seed = seed;
        _order = Order(batchCount, seed, 0, shuffle);
    }

    public int BatchCount { get; }

    public bool Shuffle { get; }

    public SamplerState State => new(_seed, _epoch, _cursor);

    /// <summary>Batches left in this epoch.</summary>
    public int Remaining => BatchCount - _cursor;

    /// <summary>
    /// Continues from a saved state. A state that cannot belong to this sampler (negative epoch, cursor
    /// beyond the epoch) is a <see cref="UserErrorException"/>: the data or batching changed since it was saved.
    /// </summary>
    public void Restore(SamplerState state)
    {
        if (state.Epoch < 0 || state.Cursor < 0 || state.Cursor > BatchCount)
        {
            throw new UserErrorException($"the saved data-sampler state (epoch {state.Epoch}, batch {state.Cursor}) does not fit an epoch of {BatchCount} batches; the dataset, batch size, context length or batching changed since the checkpoint was written");
        }
        if (state.Seed != _seed || state.Epoch != _epoch)
        {
            _order = Order(BatchCount, state.Seed, state.Epoch, Shuffle);
        }
        _seed = state.Seed;
        _epoch = state.Epoch;
        _cursor = state.Cursor;
    }

    /// <summary>The next batch index of this epoch; false (and nothing advances) once the epoch is done.</summary>
    public bool TryNext(out int batchIndex)
    {
        if (_cursor >= BatchCount)
        {
            batchIndex = -1;
            return false;
        }
        batchIndex = _order[_cursor++];
        return true;
    }

    /// <summary>Starts the next epoch at its first batch.</summary>
    public void NextEpoch()
    {
        if (_epoch == int.MaxValue)
        {
            throw new InvalidOperationException("epoch counter overflow");
        }
        _epoch++;
        _cursor = 0;
        _order = Order(BatchCount, _seed, _epoch, Shuffle);
    }

    /// <summary>The batch order of an epoch: what a sampler with these settings hands out in it.</summary>
    public static int[] Order(int batchCount, ulong seed, int epoch, bool shuffle)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batchCount);
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        if (shuffle)
        {
            return SeededPermutation.Create(batchCount, seed, (uint)epoch, SeededPermutation.SamplerPurpose);
        }
        var order = new int[batchCount];
        for (int i = 0; i < batchCount; i++)
        {
            order[i] = i;
        }
        return order;
    }
}
