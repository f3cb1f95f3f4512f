using CudaFinetune.Config;
using CudaFinetune.Errors;
using CudaFinetune.Model;
using CudaFinetune.Training;

namespace CudaFinetune.Data;

/// <summary>
/// The batches of one pass over a set of examples, fixed in advance, so that a batch is addressed by
/// its index alone (the sampler's order is a permutation of indices) and reading one allocates nothing.
/// </summary>
/// <remarks>
/// <para><b>Packing</b> (llama-recipes' ConcatDataset): every example's input ids and labels are
/// concatenated in order and cut into rows of exactly the context length; the remainder shorter than a
/// row is dropped (<see cref="DroppedTokens"/>). Consecutive rows form batches of the batch size; the
/// last batch holds the rows left over and may be smaller.</para>
/// <para><b>Padding</b> (llama-recipes' LengthBasedBatchSampler): examples longer than the context length
/// are truncated, then sorted by length (stable, so equal lengths keep their order) and cut into
/// batches of the batch size (the last may be smaller). Each batch is as long as its longest row
/// rounded up to a multiple of 64, capped at the context length, so few distinct shapes occur; the
/// rows are right-padded with the pad id, and padded positions have label -100.</para>
/// <para>A batch in which every label is masked (an alpaca prompt longer than the context, say) has no loss to
/// learn from — its mean would be 0/0 — so it is left out and counted (<see cref="EmptyBatches"/>); a plan in which
/// no batch has a target is a <see cref="UserErrorException"/>.</para>
/// </remarks>
public sealed class BatchPlan
{
    /// <summary>Padded lengths are multiples of this (unless capped by the context length).</summary>
    public const int PadMultiple = 64;

    private readonly TokenBatch[] _batches;

    private BatchPlan(TokenBatch[] batches, BatchingStrategy strategy, long droppedTokens, int emptyBatches = 0)
    {
        _batches = batches;
        Strategy = strategy;
        DroppedTokens = droppedTokens;
        EmptyBatches = emptyBatches;
        foreach (TokenBatch batch in batches)
        {
            Tokens += batch.Tokens;
            Rows += batch.BatchSize;
        }
    }

    public BatchingStrategy Strategy { get; }

    public int Count => _batches.Length;

    public TokenBatch this[int index] => _batches[index];

    /// <summary>Rows over all batches.</summary>
    public int Rows { get; }

    /// <summary>Positions over all batches, padding included.</summary>
    public long Tokens { get; }

    /// <summary>Tokens of the examples left out: the packing remainder, or what truncation cut off.</summary>
    public long DroppedTokens { get; }

    /// <summary>Batches left out because none of their labels counts (every one masked).</summary>
    public int EmptyBatches { get; }

    /// <summary>
    /// Forms the batches. No examples give an empty plan; examples too short to fill one packed row, or batches none of
    /// which has a target token, are a <see cref="UserErrorException"/> (there would be nothing to train on).
    /// </summary>
    /// <param name="role">what the examples are, for messages: "the training data", "the validation split", …</param>
    /// <param name="moreData">how to give the plan more tokens, for messages ("more data", "a larger --validation-fraction")</param>
    public static BatchPlan Create(IReadOnlyList<TokenizedExample> examples, BatchingStrategy strategy, int batchSize, int contextLength, int padId,
        string role = "the training data", string moreData = "more data")
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(role);
        ArgumentNullException.ThrowIfNull(moreData);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);
        ArgumentOutOfRangeException.ThrowIfNegative(padId);
        var plan = strategy switch
        {
            BatchingStrategy.Packing => Pack(examples, batchSize, contextLength, role, moreData),
            BatchingStrategy.Padding => Pad(examples, batchSize, contextLength, padId),
            _ => throw new ArgumentOutOfRangeException(nameof(strategy), strategy, "unknown batching strategy"),
        };
        return plan.WithoutEmptyBatches(role, contextLength);
    }

    /// <summary>This plan less its batches without a target token; none left is a <see cref="UserErrorException"/>.</summary>
    private BatchPlan WithoutEmptyBatches(string role, int contextLength)
    {
        var kept = _batches.Where(b => b.TargetCount > 0).ToArray();
        if (kept.Length == _batches.Length)
        {
            return this;
        }
        if (kept.Length == 0)
        {
            throw new UserErrorException($"{role} gives no token to learn from: every label of its {_batches.Length} batch(es) is masked (-100), "
                + $"so the loss would be 0/0; prompts or masked turns probably fill the whole --context-length {contextLength} before any response starts: raise --context-length or shorten them");
        }
        return new BatchPlan(kept, Strategy, DroppedTokens, _batches.Length - kept.Length);
    }

    /// <summary>A one-line warning about the batches left out, or null when none was.</summary>
    public string? EmptyBatchesWarning(string role) => EmptyBatches == 0 ? null
        : $"{role}: {EmptyBatches} of {EmptyBatches + Count} batches have every label masked (-100; e.g. a prompt longer than --context-length cuts off its response) and are left out";

    private static BatchPlan Pack(IReadOnlyList<TokenizedExample> examples, int batchSize, int contextLength, string role, string moreData)
    {
        long total = 0;
        foreach (TokenizedExample example in examples)
        {
            total += example.Length;
        }
        long rows = total / contextLength;
        if (rows == 0)
        {
            return examples.Count == 0
                ? new BatchPlan([], BatchingStrategy.Packing, 0)
                : throw new UserErrorException($"{role}: its {examples.Count} example(s) hold {total} tokens, fewer than one packed row of {contextLength} (--context-length); use a smaller --context-length, {moreData}, or --batching padding");
        }
        if (rows * contextLength > Array.MaxLength)
        {
            throw new UserErrorException($"the data holds {total} tokens, more than one packed array can hold; split the dataset");
        }
        int used = (int)(rows * contextLength);
        var ids = new int[used];
        var labels = new int[used];
        int at = 0;
        foreach (TokenizedExample example in examples)
        {
            int take = Math.Min(example.Length, used - at);
            example.InputIds.AsSpan(0, take).CopyTo(ids.AsSpan(at));
            example.Labels.AsSpan(0, take).CopyTo(labels.AsSpan(at));
            at += take;
            if (at == used)
            {
                break;
            }
        }
        int batchCount = (int)((rows + batchSize - 1) / batchSize);
        var batches = new TokenBatch[batchCount];
        for (int b = 0; b < batchCount; b++)
        {
            int firstRow = b * batchSize;
            int batchRows = (int)Math.Min(batchSize, rows - firstRow);
            int start = firstRow * contextLength;
            int length = batchRows * contextLength;
            batches[b] = new TokenBatch(batchRows, contextLength, ids.AsSpan(start, length).ToArray(), labels.AsSpan(start, length).ToArray());
        }
        return new BatchPlan(batches, BatchingStrategy.Packing, total - used);
    }

    private static BatchPlan Pad(IReadOnlyList<TokenizedExample> examples, int batchSize, int contextLength, int padId)
    {
        int n = examples.Count;
        var lengths = new int[n];
        var order = new int[n];
        long dropped = 0;
        for (int i = 0; i < n; i++)
        {
            lengths[i] = Math.Min(examples[i].Length, contextLength);
            dropped += examples[i].Length - lengths[i];
            order[i] = i;
        }
        // Stable sort by length: ties keep the examples' order (numpy's argsort(kind="mergesort")).
        Array.Sort(order, (x, y) => lengths[x] != lengths[y] ? lengths[x].CompareTo(lengths[y]) : x.CompareTo(y));
        int batchCount = (n + batchSize - 1) / batchSize;
        var batches = new TokenBatch[batchCount];
        for (int b = 0; b < batchCount; b++)
        {
            int first = b * batchSize;
            int rows = Math.Min(batchSize, n - first);
            int longest = 0;
            for (int r = 0; r < rows; r++)
            {
                longest = Math.Max(longest, lengths[order[first + r]]);
            }
            int seqLen = Math.Min(contextLength, RoundUp(Math.Max(longest, 1), PadMultiple));
            var ids = new int[rows * seqLen];
            var labels = new int[rows * seqLen];
            ids.AsSpan().Fill(padId);
            labels.AsSpan().Fill(TokenizedExample.IgnoreIndex);
            for (int r = 0; r < rows; r++)
            {
                int index = order[first + r];
                TokenizedExample example = examples[index];
                example.InputIds.AsSpan(0, lengths[index]).CopyTo(ids.AsSpan(r * seqLen));
                example.Labels.AsSpan(0, lengths[index]).CopyTo(labels.AsSpan(r * seqLen));
            }
            batches[b] = new TokenBatch(rows, seqLen, ids, labels);
        }
        return new BatchPlan(batches, BatchingStrategy.Padding, dropped);
    }

    private static int RoundUp(int value, int multiple) => (int)Math.Min(int.MaxValue, ((long)value + multiple - 1) / multiple * multiple);
}
