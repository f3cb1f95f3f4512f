using CudaFinetune.Backends;
using CudaFinetune.Errors;

namespace CudaFinetune.Model;

/// <summary>
/// A batch of token sequences, [BatchSize, SeqLen] row-major, with labels as Hugging Face takes
/// them: aligned with the inputs (the model shifts them by one), <see cref="IBackend.IgnoreIndex"/>
/// for positions that do not count. Null labels mean "predict every next input token".
/// </summary>
public sealed class TokenBatch
{
    public TokenBatch(int batchSize, int seqLen, int[] inputIds, int[]? labels = null)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (batchSize <= 0 || seqLen <= 0 || inputIds.Length != batchSize * seqLen || (labels is not null && labels.Length != inputIds.Length))
        {
            throw new ArgumentException($"a batch of {batchSize}×{seqLen} needs {batchSize * seqLen} input ids (got {inputIds.Length}) and as many labels (got {labels?.Length})");
        }
        BatchSize = batchSize;
        SeqLen = seqLen;
        InputIds = inputIds;
        Labels = labels;
    }

    public int BatchSize { get; }

    public int SeqLen { get; }

    public int Tokens => BatchSize * SeqLen;

    public int[] InputIds { get; }

    public int[]? Labels { get; }

    /// <summary>
    /// Positions whose next-token target counts in the loss (a label other than the ignore index after the first
    /// position of a row). A batch with none gives a loss of 0/0: the batch plans leave such batches out.
    /// </summary>
    public int TargetCount
    {
        get
        {
            if (_targetCount < 0)
            {
                int[] labels = Labels ?? InputIds;
                int counted = 0;
                for (int b = 0; b < BatchSize; b++)
                {
                    for (int t = b * SeqLen + 1; t < (b + 1) * SeqLen; t++)
                    {
                        counted += labels[t] >= 0 ? 1 : 0;
                    }
                }
                _targetCount = counted;
            }
            return _targetCount;
        }
    }

    private int _targetCount = -1;

    /// <summary>
    /// Writes the next-token targets (labels shifted left by one within each row, the last position
    /// ignored) into <paramref name="targets"/> and returns how many count.
    /// </summary>
    public int ShiftedTargets(Span<int> targets, int vocabSize)
    {
        int[] labels = Labels ?? InputIds;
        int counted = 0;
        for (int b = 0; b < BatchSize; b++)
        {
            int row = b * SeqLen;
            for (int t = 0; t < SeqLen; t++)
            {
                int id = InputIds[row + t];
                if ((uint)id >= (uint)vocabSize)
                {
                    throw new UserErrorException($"token id {id} (batch row {b}, position {t}) is outside the model's vocabulary of {vocabSize}");
                }
                int target = t + 1 < SeqLen ? labels[row + t + 1] : IBackend.IgnoreIndex;
                if (target >= vocabSize || (target < 0 && target != IBackend.IgnoreIndex))
                {
                    throw new UserErrorException($"label {target} (batch row {b}, position {t + 1}) is neither a token id below {vocabSize} nor {IBackend.IgnoreIndex}");
                }
                targets[row + t] = target;
                if (target >= 0)
                {
                    counted++;
                }
            }
        }
        return counted;
    }
}

/// <summary>Summed loss and the number of tokens it counts; <see cref="Mean"/> is what LlamaForCausalLM returns.</summary>
public readonly record struct LossResult(double Sum, int Tokens)
{
    public double Mean => Tokens == 0 ? double.NaN : Sum / Tokens;
}
