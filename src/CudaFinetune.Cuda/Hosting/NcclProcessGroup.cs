using CudaFinetune.Cuda.Backend;
using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Distributed;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Hosting;

/// <summary>
/// <see cref="IProcessGroup"/> over NCCL for the cuda backend's device tensors (F32, F64, BF16, I32): one rank per GPU.
/// Collectives run on a communication stream of their own, after the compute stream's work queued before them (an
/// event); a reduce-scatter then overlaps the kernels queued after it until <see cref="WaitForCollectives"/> makes the
/// compute stream wait for it, while every other collective is waited for at once (so all of a communicator's work stays
/// in one order on one stream). NCCL's sums run in a fixed ring order for a fixed world size and topology, which keeps
/// runs repeatable.
/// </summary>
public sealed class NcclProcessGroup : IProcessGroup
{
    private readonly NcclCommunicator _communicator;
    private readonly CudaDevice _device;
    private readonly DeviceBuffer _token;
    private readonly CudaStream _comm = CudaStream.Create();
    private readonly CudaEvent _computeReached = CudaEvent.Create(timing: false);
    private readonly CudaEvent _commReached = CudaEvent.Create(timing: false);
    private bool _pending;

    private NcclProcessGroup(NcclCommunicator communicator, CudaDevice device)
    {
        _communicator = communicator;
        _device = device;
        _token = device.Memory.Allocate(sizeof(int));
    }

    public int Rank => _communicator.Rank;

    public int WorldSize => _communicator.WorldSize;

    /// <summary>A new id for <see cref="Join"/>: made once (on rank 0) and handed to every rank, e.g. through the rendezvous.</summary>
    public static byte[] CreateUniqueId()
    {
        var id = NcclCommunicator.CreateUniqueId();
        return ((ReadOnlySpan<byte>)id).ToArray();
    }

    /// <summary>Joins rank <paramref name="rank"/> of <paramref name="worldSize"/> on <paramref name="backend"/>'s GPU; returns once every rank has joined.</summary>
    public static NcclProcessGroup Join(CudaBackend backend, int worldSize, int rank, byte[] uniqueId)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (backend.Kernels is not CudaDevice device)
        {
            throw new ArgumentException($"NCCL needs a GPU; the {backend.Name} backend has none", nameof(backend));
        }
        ArgumentNullException.ThrowIfNull(uniqueId);
        if (uniqueId.Length != Nccl.UniqueIdBytes)
        {
            throw new ArgumentException($"an NCCL unique id has {Nccl.UniqueIdBytes} bytes, not {uniqueId.Length}", nameof(uniqueId));
        }
        NcclUniqueId id = default;
        uniqueId.CopyTo((Span<byte>)id);
        device.MakeCurrent();
        return new NcclProcessGroup(NcclCommunicator.Init(worldSize, id, rank), device);
    }

    public void AllReduceSum(Tensor buffer)
    {
        AfterCompute();
        _communicator.AllReduce(buffer.Address().Address, buffer.Address().Address, buffer.ElementCount, Type(buffer), NcclRedOp.Sum, _comm.Handle);
        WaitForCollectives();
    }

    /// <summary>Queued on the communication stream and left running: the compute stream goes on until <see cref="WaitForCollectives"/>.</summary>
    public void ReduceScatterSum(Tensor input, Tensor output)
    {
        CheckShards(output, input, "reduce-scatter");
        AfterCompute();
        _communicator.ReduceScatter(input.Address().Address, output.Address().Address, output.ElementCount, Type(input), NcclRedOp.Sum, _comm.Handle);
    }

    public void AllGather(Tensor input, Tensor output)
    {
        CheckShards(input, output, "all-gather");
        AfterCompute();
        _communicator.AllGather(input.Address().Address, output.Address().Address, input.ElementCount, Type(input), _comm.Handle);
        WaitForCollectives();
    }

    public void Broadcast(Tensor buffer, int root)
    {
        AfterCompute();
        _communicator.Broadcast(buffer.Address().Address, buffer.Address().Address, buffer.ElementCount, Type(buffer), root, _comm.Handle);
        WaitForCollectives();
    }

    /// <summary>An all-reduce of one integer, waited for by the host.</summary>
    public void Barrier()
    {
        AfterCompute();
        _communicator.AllReduce(_token.Start.Address, _token.Start.Address, 1, NcclDataType.Int32, NcclRedOp.Sum, _comm.Handle);
        WaitForCollectives();
        _device.Synchronize();
        _communicator.CheckAsyncError();
    }

    /// <summary>The compute stream waits for every collective queued so far.</summary>
    public void WaitForCollectives()
    {
        if (_pending)
        {
            _commReached.Record(_comm);
            _device.Stream.Wait(_commReached);
            _pending = false;
        }
    }

    /// <summary>The next collective starts after the compute stream's work queued so far (which produced its input).</summary>
    private void AfterCompute()
    {
        _device.MakeCurrent(); // ranks run on their own threads
        _computeReached.Record(_device.Stream);
        _comm.Wait(_computeReached);
        _pending = true;
    }

    /// <summary>Aborts the communicator (ncclCommAbort): NCCL operations of this rank in flight end, and later ones fail.</summary>
    public void Abort() => _communicator.Abort();

    public void Dispose()
    {
        WaitForCollectives();
        _comm.Dispose();
        _computeReached.Dispose();
        _commReached.Dispose();
        _device.Memory.Free(_token);
        _communicator.Dispose();
    }

    private static NcclDataType Type(Tensor tensor) => tensor.DType switch
    {
        DType.F32 => NcclDataType.Float32,
        DType.F64 => NcclDataType.Float64,
        DType.BF16 => NcclDataType.BFloat16,
        DType.I32 => NcclDataType.Int32,
        _ => throw new ArgumentException($"NCCL collectives take F32, F64, BF16 or I32 tensors, not {tensor}"),
    };

    private void CheckShards(Tensor shard, Tensor whole, string what)
    {
        if (whole.ElementCount != shard.ElementCount * WorldSize || whole.DType != shard.DType)
        {
            throw new ArgumentException($"{what}: {whole} must hold {WorldSize} shards like {shard}");
        }
    }
}
