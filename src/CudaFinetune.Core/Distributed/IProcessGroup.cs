using CudaFinetune.Tensors;

namespace CudaFinetune.Distributed;

/// <summary>
/// The ranks of a data-parallel job and the collectives between them, as NCCL offers them. Every rank calls the same
/// collectives in the same order with tensors of the same dtype and size; a call returns once this rank's result is in
/// place, except <see cref="ReduceScatterSum"/>, which may overlap the work after it until <see cref="WaitForCollectives"/>.
/// Sums are deterministic: the same inputs give the same bits on every run (a fixed reduction order).
/// </summary>
public interface IProcessGroup : IDisposable
{
    /// <summary>This rank, 0 ≤ Rank &lt; WorldSize.</summary>
    int Rank { get; }

    int WorldSize { get; }

    /// <summary>buffer = Σ over ranks of buffer, on every rank.</summary>
    void AllReduceSum(Tensor buffer);

    /// <summary>
    /// output = Σ over ranks of this rank's shard of input (input holds WorldSize equal shards, shard r for rank r). It may
    /// still be running when it returns (NCCL runs it beside the computation queued after it): call
    /// <see cref="WaitForCollectives"/> before anything reads output or writes input.
    /// </summary>
    void ReduceScatterSum(Tensor input, Tensor output);

    /// <summary>output = every rank's input, in rank order (output holds WorldSize times input).</summary>
    void AllGather(Tensor input, Tensor output);

    /// <summary>buffer = root's buffer, on every rank.</summary>
    void Broadcast(Tensor buffer, int root);

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();

    /// <summary>Work the backend queues from now on sees the results of every collective called so far (and may reuse their buffers).</summary>
    void WaitForCollectives();

    /// <summary>
    /// Called when this rank cannot go on (its training failed): collectives in progress or to come fail — with a
    /// <see cref="RankAbortedException"/> where the group can tell — instead of waiting for this rank.
    /// </summary>
    void Abort();

    /// <summary>
    /// Whether another rank is known to have stopped, looked up without waiting (work beside the collectives, such as a
    /// checkpoint's wait for the other ranks' shards, stops waiting then); false where the group cannot tell.
    /// </summary>
    bool PeerStopped => false;
}

/// <summary>A collective failed because another rank of the group stopped (its own error is the cause to report).</summary>
public sealed class RankAbortedException : Exception
{
    public RankAbortedException()
    {
    }

    public RankAbortedException(string message)
        : base(message)
    {
    }

    public RankAbortedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
