using CudaFinetune.Backends.Cpu;
using CudaFinetune.Distributed;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Distributed;

/// <summary>Ranks over loopback TCP (one thread each here): the collectives give the thread ranks' bits, and a rank that goes away fails the others.</summary>
[TestFixture]
[NonParallelizable] // listens on a port
public sealed class TcpProcessGroupTests
{
    private static float[] Values(int rank, int n) => [.. Enumerable.Range(0, n).Select(i => (float)Math.Sin(rank * 1000 + i) * 1e3f)];

    /// <summary>Runs <paramref name="body"/> on each rank of a loopback TCP group; rethrows the failures.</summary>
    private static void OnRanks(int worldSize, Action<TcpProcessGroup> body)
    {
        int port = RankThreads.FreePort();
        RankThreads.Run(worldSize, rank =>
        {
            using var group = TcpProcessGroup.Join(new LaunchEnvironment("torchrun", rank, worldSize, rank, "127.0.0.1", port), rank == 0 ? [7] : null, TimeSpan.FromSeconds(30));
            Assert.That(group.Payload, Is.EqualTo(new byte[] { 7 }));
            body(group);
        });
    }

    [Test]
    public void The_collectives_equal_the_thread_ranks_bit_for_bit()
    {
        const int worldSize = 3, shard = 333;
        var expectedSum = new float[worldSize * shard];
        for (int r = 0; r < worldSize; r++)
        {
            var v = Values(r, expectedSum.Length);
            for (int i = 0; i < v.Length; i++)
            {
                expectedSum[i] = r == 0 ? v[i] : expectedSum[i] + v[i];
            }
        }
        var reduced = new float[worldSize][];
        var scattered = new float[worldSize][];
        var gathered = new float[worldSize][];
        var broadcast = new double[worldSize][];
        OnRanks(worldSize, group =>
        {
            using var cpu = new CpuBackend(threads: 1);
            int r = group.Rank;
            using var buffer = cpu.Allocate(DType.F32, new Shape(expectedSum.Length));
            Values(r, expectedSum.Length).CopyTo(buffer.HostSpan<float>());
            using var mine = cpu.Allocate(DType.F32, new Shape(shard));
            group.ReduceScatterSum(buffer, mine);
            scattered[r] = mine.HostSpan<float>().ToArray();
            group.AllGather(mine, buffer);
            gathered[r] = buffer.HostSpan<float>().ToArray();
            Values(r, expectedSum.Length).CopyTo(buffer.HostSpan<float>());
            group.AllReduceSum(buffer);
            reduced[r] = buffer.HostSpan<float>().ToArray();
            using var root = cpu.Allocate(DType.F64, new Shape(2));
            root.HostSpan<double>()[0] = r;
            root.HostSpan<double>()[1] = r * 10;
            group.Broadcast(root, 2);
            broadcast[r] = root.HostSpan<double>().ToArray();
            group.Barrier();
        });
        for (int r = 0; r < worldSize; r++)
        {
            Assert.That(reduced[r], Is.EqualTo(expectedSum), $"all-reduce on rank {r}");
            Assert.That(scattered[r], Is.EqualTo(expectedSum.Skip(r * shard).Take(shard)), $"reduce-scatter on rank {r}");
            Assert.That(gathered[r], Is.EqualTo(expectedSum), $"all-gather on rank {r}");
            Assert.That(broadcast[r], Is.EqualTo(new double[] { 2, 20 }), $"broadcast on rank {r}");
        }
    }

    [Test]
    public void Ranks_that_disagree_on_a_size_are_told_and_a_rank_that_leaves_fails_the_others()
    {
        var e = Assert.Throws<AggregateException>(() => OnRanks(2, group =>
        {
            using var cpu = new CpuBackend(threads: 1);
            using var buffer = cpu.Allocate(DType.F32, new Shape(group.Rank == 0 ? 4 : 5));
            group.AllReduceSum(buffer);
        }));
        Assert.That(e!.InnerExceptions.Select(x => x.Message), Has.Some.StartsWith("ranks disagree in a collective"));

        var left = Assert.Throws<AggregateException>(() => OnRanks(3, group =>
        {
            if (group.Rank == 2)
            {
                group.Abort(); // leaves without taking part
                return;
            }
            group.Barrier();
        }));
        Assert.That(left!.InnerExceptions, Has.Some.InstanceOf<RankAbortedException>());
    }
}
