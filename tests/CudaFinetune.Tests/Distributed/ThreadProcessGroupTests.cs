using CudaFinetune.Backends.Cpu;
using CudaFinetune.Distributed;
using CudaFinetune.Tensors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Distributed;

/// <summary>
/// In-process ranks: every collective against a sequential reference summed in rank order (bit for bit), at sizes that do
/// not divide by the world size, and the errors a broken job gets (a rank that never arrives, ranks that disagree).
/// </summary>
[TestFixture]
public sealed class ThreadProcessGroupTests
{
    /// <summary>Runs <paramref name="body"/> on one thread per rank of a new group; rethrows the failures.</summary>
    private static void OnRanks(int worldSize, Action<ThreadProcessGroup> body, TimeSpan? timeout = null)
    {
        var groups = ThreadProcessGroup.Create(worldSize, timeout);
        RankThreads.Run(worldSize, rank => body(groups[rank]));
    }

    private static float[] Values(int rank, int n) => [.. Enumerable.Range(0, n).Select(i => (float)Math.Sin(rank * 1000 + i) * 1e3f)];

    [TestCase(1, 10)]
    [TestCase(2, 1001)]
    [TestCase(3, 1000)]
    public void All_reduce_sums_in_rank_order_on_every_rank(int worldSize, int n)
    {
        var expected = new float[n];
        for (int r = 0; r < worldSize; r++)
        {
            var v = Values(r, n);
            for (int i = 0; i < n; i++)
            {
                expected[i] = r == 0 ? v[i] : expected[i] + v[i];
            }
        }
        var results = new float[worldSize][];
        using var cpu = new CpuBackend(threads: 1);
        OnRanks(worldSize, group =>
        {
            using var buffer = cpu.Allocate(DType.F32, new Shape(n));
            Values(group.Rank, n).CopyTo(buffer.HostSpan<float>());
            group.AllReduceSum(buffer);
            results[group.Rank] = buffer.HostSpan<float>().ToArray();
        });
        Assert.That(results, Is.All.EqualTo(expected));
    }

    [Test]
    public void Reduce_scatter_then_all_gather_is_an_all_reduce()
    {
        const int worldSize = 3, shard = 7;
        var results = new float[worldSize][];
        var reference = new float[worldSize][];
        using var cpu = new CpuBackend(threads: 1);
        OnRanks(worldSize, group =>
        {
            using var input = cpu.Allocate(DType.F32, new Shape(worldSize * shard));
            Values(group.Rank, worldSize * shard).CopyTo(input.HostSpan<float>());
            using var mine = cpu.Allocate(DType.F32, new Shape(shard));
            using var gathered = cpu.Allocate(DType.F32, new Shape(worldSize * shard));
            group.ReduceScatterSum(input, mine);
            group.AllGather(mine, gathered);
            results[group.Rank] = gathered.HostSpan<float>().ToArray();
            group.AllReduceSum(input);
            reference[group.Rank] = input.HostSpan<float>().ToArray();
        });
        for (int r = 0; r < worldSize; r++)
        {
            Assert.That(results[r], Is.EqualTo(reference[r]), $"rank {r}");
        }
    }

    [Test]
    public void Broadcast_copies_the_roots_buffer()
    {
        var results = new double[4][];
        using var cpu = new CpuBackend(DType.F64, threads: 1);
        OnRanks(4, group =>
        {
            using var buffer = cpu.Allocate(DType.F64, new Shape(5));
            buffer.HostSpan<double>().Fill(group.Rank);
            group.Broadcast(buffer, root: 2);
            results[group.Rank] = buffer.HostSpan<double>().ToArray();
        });
        Assert.That(results, Is.All.EqualTo(new double[] { 2, 2, 2, 2, 2 }));
    }

    [Test]
    public void Ranks_that_pass_different_sizes_all_fail_with_one_message()
    {
        using var cpu = new CpuBackend(threads: 1);
        var e = Assert.Throws<AggregateException>(() => OnRanks(2, group =>
        {
            using var buffer = cpu.Allocate(DType.F32, new Shape(group.Rank == 0 ? 4 : 5));
            group.AllReduceSum(buffer);
        }));
        Assert.That(e!.InnerExceptions, Has.Count.EqualTo(2).And.All.InstanceOf<ArgumentException>());
        Assert.That(e.InnerExceptions[0].Message, Does.StartWith("ranks disagree in a collective"));
    }

    [Test]
    public void A_rank_that_never_arrives_times_the_others_out()
    {
        var e = Assert.Throws<AggregateException>(() => OnRanks(3, group =>
        {
            if (group.Rank != 1)
            {
                group.Barrier();
            }
        }, TimeSpan.FromMilliseconds(200)));
        Assert.That(e!.InnerExceptions, Has.Count.EqualTo(2).And.All.InstanceOf<TimeoutException>());
        Assert.That(e.InnerExceptions[0].Message, Does.Contain("of 3 waited 0 s in barrier for a rank that never arrived"));
    }

    [Test]
    public void A_rank_that_aborts_ends_the_others_waits_at_once()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<AggregateException>(() => OnRanks(3, group =>
        {
            if (group.Rank == 1)
            {
                Thread.Sleep(50);
                group.Abort(); // as a failed rank's session does
                return;
            }
            group.Barrier();
        }, TimeSpan.FromSeconds(60)));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "nobody waited for the timeout");
        Assert.That(e!.InnerExceptions, Has.Count.EqualTo(2).And.All.InstanceOf<RankAbortedException>());
        Assert.That(e.InnerExceptions[0].Message, Does.Contain("another rank stopped"));
    }
}
