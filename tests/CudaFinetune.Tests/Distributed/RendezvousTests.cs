using System.Collections;
using CudaFinetune.Distributed;
using CudaFinetune.Errors;
using CudaFinetune.Tests.Support;
using NUnit.Framework;

namespace CudaFinetune.Tests.Distributed;

/// <summary>The launcher environments, and the TCP rendezvous over loopback with one thread per rank: the bytes arrive, and each broken job fails clearly.</summary>
[TestFixture]
public sealed class RendezvousTests
{
    private static LaunchEnvironment Job(int rank, int worldSize, int port) => new("torchrun", rank, worldSize, rank, "127.0.0.1", port);

    /// <summary>Each rank's result or error, run concurrently.</summary>
    private static (byte[]? Result, Exception? Error)[] Run(IEnumerable<LaunchEnvironment> jobs, byte[] payload, TimeSpan timeout)
    {
        var tasks = jobs.Select(job => Task.Run(() => TcpRendezvous.Exchange(job, job.Rank == 0 ? payload : null, timeout))).ToArray();
        return [.. tasks.Select(t =>
        {
            try
            {
                return ((byte[]?)t.GetAwaiter().GetResult(), (Exception?)null);
            }
            catch (UserErrorException e)
            {
                return (null, e);
            }
        })];
    }

    [Test]
    public void Every_rank_gets_rank_zeros_bytes_whatever_order_they_start_in()
    {
        int port = RankThreads.FreePort();
        byte[] payload = [.. Enumerable.Range(0, 128).Select(i => (byte)(i * 7))];
        // Ranks 3 and 2 first: they retry until rank 0 listens.
        var results = Run([Job(3, 4, port), Job(2, 4, port), Job(0, 4, port), Job(1, 4, port)], payload, TimeSpan.FromSeconds(20));
        Assert.That(results.Select(r => r.Error), Is.All.Null);
        Assert.That(results.Select(r => r.Result), Is.All.EqualTo(payload));
    }

    [Test]
    public void A_rank_that_never_arrives_is_named()
    {
        int port = RankThreads.FreePort();
        // 5 s: long enough that rank 1 arrives on a loaded 2-core machine (at 1 s it sometimes did not).
        var results = Run([Job(0, 3, port), Job(1, 3, port)], [1, 2, 3], TimeSpan.FromSeconds(5));
        Assert.That(results[0].Error!.Message, Does.Contain("rank(s) 2 of 3 never arrived within 5 s"));
        Assert.That(results[1].Error, Is.Not.Null);
    }

    [Test]
    public void Ranks_started_with_different_world_sizes_are_refused_on_both_sides()
    {
        int port = RankThreads.FreePort();
        var results = Run([Job(0, 2, port), Job(1, 3, port)], [9], TimeSpan.FromSeconds(10));
        Assert.That(results[0].Error!.Message, Does.Contain("rank 1 says the world size is 3, rank 0 says 2"));
        Assert.That(results[1].Error!.Message, Does.StartWith("rank 1: rendezvous refused: rank 1 says the world size is 3"));
    }

    [Test]
    public void Nothing_listening_at_the_master_port_says_what_to_check()
    {
        int port = RankThreads.FreePort();
        var results = Run([Job(1, 2, port)], [], TimeSpan.FromSeconds(1));
        Assert.That(results[0].Error!.Message, Does.StartWith($"rank 1: nothing is listening at 127.0.0.1:{port} after 1 s").And.Contain("check MASTER_ADDR and MASTER_PORT"));
    }

    [Test]
    public void Launchers_are_read_from_their_variables()
    {
        static LaunchEnvironment? Read(params (string Key, string Value)[] variables)
            => LaunchEnvironment.From(new Hashtable(variables.ToDictionary(v => v.Key, v => (object)v.Value)));
        Assert.That(Read(), Is.Null);
        Assert.That(Read(("RANK", "1"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "1"), ("MASTER_ADDR", "node0"), ("MASTER_PORT", "1234")),
            Is.EqualTo(new LaunchEnvironment("torchrun", 1, 4, 1, "node0", 1234)));
        Assert.That(Read(("SLURM_PROCID", "5"), ("SLURM_NTASKS", "8"), ("SLURM_LOCALID", "1"), ("MASTER_ADDR", "n1")),
            Is.EqualTo(new LaunchEnvironment("srun", 5, 8, 1, "n1", LaunchEnvironment.DefaultMasterPort)));
        Assert.That(Read(("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "1")),
            Is.EqualTo(new LaunchEnvironment("mpirun", 0, 1, 0, "127.0.0.1", LaunchEnvironment.DefaultMasterPort)));
        Assert.That(Read(("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "n0"), ("MASTER_PORT", "29500"), ("TORCHELASTIC_USE_AGENT_STORE", "True"))!.MasterPort,
            Is.EqualTo(29501), "torchrun's agent holds MASTER_PORT");
        Assert.That(Read(("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "n0"), ("TORCHELASTIC_USE_AGENT_STORE", "True"), (LaunchEnvironment.RendezvousPortVariable, "4000"))!.MasterPort,
            Is.EqualTo(4000), "an explicit rendezvous port wins");
        Assert.That(() => Read(("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "x")), Throws.TypeOf<UserErrorException>().With.Message.Contains("does not fit world size 2"));
        Assert.That(() => Read(("RANK", "0"), ("WORLD_SIZE", "2")), Throws.TypeOf<UserErrorException>().With.Message.Contains("MASTER_ADDR is not set"));
        Assert.That(() => Read(("RANK", "x"), ("WORLD_SIZE", "2")), Throws.TypeOf<UserErrorException>().With.Message.Contains("RANK='x' is not a non-negative integer"));
    }
}
