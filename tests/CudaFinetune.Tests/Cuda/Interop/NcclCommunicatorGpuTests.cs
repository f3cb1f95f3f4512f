using CudaFinetune.Cuda.Interop;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Numerics;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Cuda.Interop;

/// <summary>
/// NCCL collectives on a real GPU with a communicator of one rank (a valid NCCL world): every collective must
/// then hand back exactly what it was given. Ignored (with the reason) where there is no GPU or no NCCL.
/// </summary>
[TestFixture]
public sealed unsafe class NcclCommunicatorGpuTests() : GpuFixture(report => report.Nccl)
{
    private const int Count = 1000;

    private NcclCommunicator _comm = null!;

    [OneTimeSetUp]
    public void CreateCommunicator() => _comm = NcclCommunicator.Init(1, NcclCommunicator.CreateUniqueId(), 0);

    [OneTimeTearDown]
    public void DisposeCommunicator() => _comm?.Dispose();

    /// <summary>A receive buffer that starts out different from anything a collective should write.</summary>
    private ulong Garbage(int count) => Upload(Enumerable.Repeat(-12345f, count).ToArray());

    [Test]
    public void The_communicator_is_one_rank()
    {
        Assert.That((_comm.WorldSize, _comm.Rank), Is.EqualTo((1, 0)));
        Assert.DoesNotThrow(_comm.CheckAsyncError);
    }

    [TestCase((int)NcclRedOp.Sum)]
    [TestCase((int)NcclRedOp.Avg)]
    [TestCase((int)NcclRedOp.Max)]
    public void All_reduce_of_one_rank_is_the_input(int reduction)
    {
        var op = (NcclRedOp)reduction;
        float[] data = MatmulReference.Random(Count, 71);
        ulong send = Upload(data), receive = Garbage(Count);
        _comm.AllReduce(send, receive, Count, NcclDataType.Float32, op, Gpu.Stream.Handle);
        Gpu.Synchronize();
        Assert.That(Download<float>(receive, Count), Is.EqualTo(data));
    }

    [Test]
    public void All_reduce_in_place_and_in_bf16()
    {
        float[] data = MatmulReference.Random(Count, 72);
        ulong buffer = Upload(data);
        _comm.AllReduce(buffer, buffer, Count, NcclDataType.Float32, NcclRedOp.Sum, Gpu.Stream.Handle);
        ushort[] bf16 = Array.ConvertAll(data, HalfPrecision.ToBFloat16);
        ulong send = Upload(bf16), receive = Upload(new ushort[Count]);
        _comm.AllReduce(send, receive, Count, NcclDataType.BFloat16, NcclRedOp.Sum, Gpu.Stream.Handle);
        Gpu.Synchronize();
        Assert.That(Download<float>(buffer, Count), Is.EqualTo(data), "in place");
        Assert.That(Download<ushort>(receive, Count), Is.EqualTo(bf16), "bf16");
    }

    [Test]
    public void All_gather_reduce_scatter_and_broadcast_of_one_rank_are_the_input()
    {
        float[] data = MatmulReference.Random(Count, 73);
        ulong send = Upload(data), gathered = Garbage(Count), scattered = Garbage(Count), broadcast = Garbage(Count);
        _comm.AllGather(send, gathered, Count, NcclDataType.Float32, Gpu.Stream.Handle);
        _comm.ReduceScatter(send, scattered, Count, NcclDataType.Float32, NcclRedOp.Sum, Gpu.Stream.Handle);
        _comm.Broadcast(send, broadcast, Count, NcclDataType.Float32, 0, Gpu.Stream.Handle);
        Gpu.Synchronize();
        Assert.That(Download<float>(gathered, Count), Is.EqualTo(data), "all-gather");
        Assert.That(Download<float>(scattered, Count), Is.EqualTo(data), "reduce-scatter");
        Assert.That(Download<float>(broadcast, Count), Is.EqualTo(data), "broadcast");
        Assert.DoesNotThrow(_comm.CheckAsyncError);
    }

    [Test]
    public void Grouped_collectives_run_when_the_group_ends()
    {
        float[] first = MatmulReference.Random(Count, 74), second = MatmulReference.Random(Count / 2, 75);
        ulong send1 = Upload(first), send2 = Upload(second), receive1 = Garbage(Count), receive2 = Garbage(Count / 2);
        using (NcclCommunicator.Group())
        {
            _comm.AllReduce(send1, receive1, Count, NcclDataType.Float32, NcclRedOp.Sum, Gpu.Stream.Handle);
            _comm.AllGather(send2, receive2, Count / 2, NcclDataType.Float32, Gpu.Stream.Handle);
        }
        Gpu.Synchronize();
        Assert.That(Download<float>(receive1, Count), Is.EqualTo(first));
        Assert.That(Download<float>(receive2, Count / 2), Is.EqualTo(second));
    }

    [Test]
    public void A_broadcast_from_a_rank_that_does_not_exist_is_refused()
        => Assert.Throws<ArgumentOutOfRangeException>(() => _comm.Broadcast(0, 0, 1, NcclDataType.Float32, 1, default));

    [Test]
    public void A_second_communicator_is_made_and_destroyed_cleanly()
    {
        var id = NcclCommunicator.CreateUniqueId();
        Assert.That(((ReadOnlySpan<byte>)id).ToArray(), Has.Some.Not.EqualTo((byte)0), "NCCL filled the id");
        using var comm = NcclCommunicator.Init(1, id, 0);
        Assert.That(comm.WorldSize, Is.EqualTo(1));
    }
}
