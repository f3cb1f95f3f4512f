namespace CudaFinetune.Data;

/// <summary>
/// One tokenized training example: input ids and labels of the same length, labels aligned with the
/// inputs (the model shifts them), <see cref="IgnoreIndex"/> (-100) where a token does not count
/// towards the loss (prompt tokens, padding).
/// </summary>
public sealed record TokenizedExample
{
    /// <summary>The label of a position that does not count (Hugging Face's -100).</summary>
    public const int IgnoreIndex = -100;

    public TokenizedExample(int[] inputIds, int[] labels)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(labels);
        if (inputIds.Length != labels.Length)
        {
            throw new ArgumentException($"an example needs as many labels as input ids (got {labels.Length} labels for {inputIds.Length} ids)", nameof(labels));
        }
        InputIds = inputIds;
        Labels = labels;
    }

    public int[] InputIds { get; }

    public int[] Labels { get; }

    public int Length => InputIds.Length;

    /// <summary>Labels that count (not <see cref="IgnoreIndex"/>).</summary>
    public int CountedLabels
    {
        get
        {
            int counted = 0;
            foreach (int label in Labels)
            {
                if (label != IgnoreIndex)
                {
                    counted++;
                }
            }
            return counted;
        }
    }
}
