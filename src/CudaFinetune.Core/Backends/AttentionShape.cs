namespace CudaFinetune.Backends;

/// <summary>The sizes of one causal grouped-query attention call.</summary>
public readonly record struct AttentionShape(int Batch, int SeqLen, int QueryHeads, int KvHeads, int HeadDim, double Scale)
{
    public int Tokens => Batch * SeqLen;

    /// <summary>Query heads that share one key/value head.</summary>
    public int GroupSize => QueryHeads / KvHeads;

    public void Validate()
    {
        if (Batch <= 0 || SeqLen <= 0 || QueryHeads <= 0 || KvHeads <= 0 || HeadDim <= 0)
        {
            throw new ArgumentException($"attention sizes must be positive: {this}");
        }
        if (QueryHeads % KvHeads != 0)
        {
            throw new ArgumentException($"query heads ({QueryHeads}) must be a multiple of key/value heads ({KvHeads})");
        }
    }
}
