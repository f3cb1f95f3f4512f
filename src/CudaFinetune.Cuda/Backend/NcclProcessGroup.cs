using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Distributed;
using CudaFinetune.Tensors;

namespace CudaFinetune.Cuda.Backend;

/// <summary>
/// <see cref="IProcessGroup"/> over NCCL for the cuda backend's device tensors (F32, F64, BF16, I32): one rank per GPU, each
/// collective enqueued on the device's compute stream, so the kernels after it see its result. NCCL's sums run in a
/// fixed ring order for a fixed world size and topology, which keeps runs repeatable.
/// </summary>
public sealed class NcclProcessGroup : IProcessGroup
{
    private readonly NcclCommunicator _communicator;
    private readonly CudaDevice _device;
    private readonly DeviceBuffer _token;

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
        => _communicator.AllReduce(buffer.Address().Address, buffer.Address().Address, buffer.ElementCount, Type(buffer), NcclRedOp.Sum, _device.Stream.Handle);

    public void ReduceScatterSum(Tensor input, Tensor output)
    {
        CheckShards(output, input, "reduce-scatter");
        _communicator.ReduceScatter(input.Address().Address, output.Address().Address, output.ElementCount, Type(input), NcclRedOp.Sum, _device.Stream.Handle);
    }

    public void AllGather(Tensor input, Tensor output)
    {
        CheckShards(input, output, "all-gather");
        _communicator.AllGather(input.Address().Address, output.Address().Address, input.ElementCount, Type(input), _device.Stream.Handle);
    }

    public void Broadcast(Tensor buffer, int root)
        => _communicator.Broadcast(buffer.Address().Address, buffer.Address().Address, buffer.ElementCount, Type(buffer), root, _device.Stream.Handle);

    /// <summary>An all-reduce of one integer, waited for.</summary>
    public void Barrier()
    {
        _communicator.AllReduce(_token.Start.Address, _token.Start.Address, 1, NcclDataType.Int32, NcclRedOp.Sum, _device.Stream.Handle);
        _device.Synchronize();
        _communicator.CheckAsyncError();
    }

    /// <summary>Aborts the communicator (ncclCommAbort): NCCL operations of this rank in flight end, and later ones fail.</summary>
    public void Abort() => _communicator.Abort();

    public void Dispose()
    {
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
