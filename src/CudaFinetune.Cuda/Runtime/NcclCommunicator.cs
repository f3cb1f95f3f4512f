using CudaFinetune.Cuda.Interop;
using CudaFinetune.Errors;

namespace CudaFinetune.Cuda.Runtime;

/// <summary>
/// One rank's NCCL communicator, for data-parallel training: made from a unique id that rank 0 creates and
/// shares, it runs all-reduce, reduce-scatter, all-gather and broadcast on device buffers (CUdeviceptr as
/// <c>ulong</c>, counts in elements) enqueued on a stream. A failed call or an asynchronous error marks it
/// faulted, and <see cref="Dispose"/> then aborts it (ncclCommAbort) instead of destroying it, since a
/// destroy can wait forever on peers that are gone. Each rank uses its own GPU, whose context must be
/// current when it is made.
/// </summary>
internal sealed unsafe class NcclCommunicator : IDisposable
{
    private readonly NcclComm _comm;
    private bool _faulted;
    private bool _disposed;

    private NcclCommunicator(NcclComm comm, int worldSize, int rank)
    {
        _comm = comm;
        WorldSize = worldSize;
        Rank = rank;
    }

    /// <summary>The number of ranks, as NCCL counts them.</summary>
    public int WorldSize { get; }

    /// <summary>This rank, as NCCL numbers it.</summary>
    public int Rank { get; }

    /// <summary>A new rendezvous id (on rank 0); every rank passes the same one to <see cref="Init"/>.</summary>
    public static NcclUniqueId CreateUniqueId()
    {
        RequireLibrary();
        NcclUniqueId id = default;
        NcclException.ThrowIfFailed(Nccl.GetUniqueId(&id));
        return id;
    }

    /// <summary>Joins rank <paramref name="rank"/> of <paramref name="worldSize"/>; returns once every rank has joined (a world of one is valid).</summary>
    public static NcclCommunicator Init(int worldSize, NcclUniqueId uniqueId, int rank)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, worldSize);
        RequireLibrary();
        NcclComm comm;
        NcclException.ThrowIfFailed(Nccl.CommInitRank(&comm, worldSize, uniqueId, rank));
        try
        {
            int count = 0, userRank = 0;
            NcclException.ThrowIfFailed(Nccl.CommCount(comm, &count));
            NcclException.ThrowIfFailed(Nccl.CommUserRank(comm, &userRank));
            return new NcclCommunicator(comm, count, userRank);
        }
        catch
        {
            _ = Nccl.CommAbort(comm);
            throw;
        }
    }

    /// <summary>Reduces <paramref name="count"/> elements across ranks; every rank receives the result (in place when send is receive).</summary>
    public void AllReduce(ulong send, ulong receive, long count, NcclDataType type, NcclRedOp op, CuStream stream)
        => Check(Nccl.AllReduce((void*)send, (void*)receive, Count(count), type, op, Live(), stream), "ncclAllReduce");

    /// <summary>Reduces WorldSize × <paramref name="receiveCount"/> elements; rank i receives block i of the result.</summary>
    public void ReduceScatter(ulong send, ulong receive, long receiveCount, NcclDataType type, NcclRedOp op, CuStream stream)
        => Check(Nccl.ReduceScatter((void*)send, (void*)receive, Count(receiveCount), type, op, Live(), stream), "ncclReduceScatter");

    /// <summary>Gathers <paramref name="sendCount"/> elements from every rank; rank i's land at offset i × sendCount.</summary>
    public void AllGather(ulong send, ulong receive, long sendCount, NcclDataType type, CuStream stream)
        => Check(Nccl.AllGather((void*)send, (void*)receive, Count(sendCount), type, Live(), stream), "ncclAllGather");

    /// <summary>Copies <paramref name="count"/> elements from rank <paramref name="root"/>'s send buffer into every rank's receive buffer.</summary>
    public void Broadcast(ulong send, ulong receive, long count, NcclDataType type, int root, CuStream stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, WorldSize);
        Check(Nccl.Broadcast((void*)send, (void*)receive, Count(count), type, root, Live(), stream), "ncclBroadcast");
    }

    /// <summary>
    /// Fuses the NCCL calls made until the returned scope is disposed into one launch (ncclGroupStart … ncclGroupEnd):
    /// <c>using (NcclCommunicator.Group()) { … }</c>. Nothing reaches the streams before the end.
    /// </summary>
    public static NcclGroup Group()
    {
        RequireLibrary();
        NcclException.ThrowIfFailed(Nccl.GroupStart());
        return new NcclGroup();
    }

    /// <summary>Throws if NCCL has recorded an asynchronous error (a failed peer, a network error) on this communicator.</summary>
    public void CheckAsyncError()
    {
        NcclResult asyncError;
        Check(Nccl.CommGetAsyncError(Live(), &asyncError), "ncclCommGetAsyncError");
        if (asyncError is not (NcclResult.Success or NcclResult.InProgress))
        {
            _faulted = true;
            throw new NcclException($"communicator of rank {Rank}/{WorldSize} failed asynchronously: {Nccl.Describe(asyncError)}");
        }
    }

    private NcclComm Live()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _comm;
    }

    private void Check(NcclResult result, string call)
    {
        if (result != NcclResult.Success)
        {
            _faulted = true;
            NcclException.ThrowIfFailed(result, call);
        }
    }

    private static nuint Count(long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return (nuint)count;
    }

    /// <summary>A missing NCCL is the machine's, not the engine's: say so, with every place it was looked for.</summary>
    internal static void RequireLibrary()
    {
        var probe = LibraryResolver.Probe(NativeLibraries.Nccl);
        if (!probe.Found)
        {
            throw new UserErrorException($"multi-GPU training needs NCCL, which was not found (install pip's nvidia-nccl or the NCCL package; run 'CudaFinetune devices' for details). {probe.Describe()}");
        }
    }

    /// <summary>Aborts the communicator now (another rank of this process failed); disposing it later does nothing more.</summary>
    public void Abort()
    {
        if (!_disposed)
        {
            _disposed = true;
            _ = Nccl.CommAbort(_comm);
        }
    }

    /// <summary>Destroys the communicator, or aborts it after an error (its own or one NCCL recorded asynchronously).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        NcclResult asyncError = NcclResult.Success;
        if (!_faulted && Nccl.CommGetAsyncError(_comm, &asyncError) == NcclResult.Success && asyncError == NcclResult.Success)
        {
            _ = Nccl.CommDestroy(_comm); // teardown: nothing useful to do with a failure
        }
        else
        {
            _ = Nccl.CommAbort(_comm);
        }
    }
}

/// <summary>An open NCCL group (see <see cref="NcclCommunicator.Group"/>); disposing it ends the group and launches what it holds.</summary>
internal sealed class NcclGroup : IDisposable
{
    private bool _ended;

    internal NcclGroup()
    {
    }

    public void Dispose()
    {
        if (_ended)
        {
            return;
        }
        _ended = true;
        NcclException.ThrowIfFailed(Nccl.GroupEnd());
    }
}
