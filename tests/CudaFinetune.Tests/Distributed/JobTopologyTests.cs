using CudaFinetune.Distributed;
using CudaFinetune.Errors;
using NUnit.Framework;

namespace CudaFinetune.Tests.Distributed;

/// <summary>How --world-size, --nproc-per-node and a launcher's environment make a job.</summary>
[TestFixture]
public sealed class JobTopologyTests
{
    private static LaunchEnvironment Torchrun(int rank, int worldSize, int localRank = 0) => new("torchrun", rank, worldSize, localRank, "10.0.0.1", 29500);

    [Test]
    public void Without_a_launcher_this_process_runs_every_rank()
    {
        Assert.That(JobTopology.Resolve(1, 0, null), Is.SameAs(JobTopology.Alone));
        var job = JobTopology.Resolve(3, 0, null);
        Assert.That((job.WorldSize, job.LocalRanks, job.ProcessCount, job.FirstRank), Is.EqualTo((3, 3, 1, 0)));
        Assert.That(JobTopology.Resolve(1, 4, null).WorldSize, Is.EqualTo(4), "--nproc-per-node alone says the same");
        Assert.That(Assert.Throws<UserErrorException>(() => JobTopology.Resolve(2, 4, null))!.Message, Does.Contain("disagree"));
    }

    [Test]
    public void Under_a_launcher_the_world_is_processes_times_ranks_per_process()
    {
        var job = JobTopology.Resolve(1, 4, Torchrun(rank: 1, worldSize: 2, localRank: 0));
        Assert.That((job.WorldSize, job.LocalRanks, job.ProcessRank, job.FirstRank), Is.EqualTo((8, 4, 1, 4)));
        Assert.That(job.DeviceOrdinal(3), Is.EqualTo(3), "one process per node: local ranks are the node's GPUs");
        var perGpu = JobTopology.Resolve(1, 0, Torchrun(rank: 5, worldSize: 8, localRank: 1));
        Assert.That((perGpu.WorldSize, perGpu.LocalRanks, perGpu.FirstRank, perGpu.DeviceOrdinal(0)), Is.EqualTo((8, 1, 5, 1)), "one process per GPU");
        Assert.That(perGpu.IsFirstProcess, Is.False);
    }

    [Test]
    public void A_world_size_that_contradicts_the_launch_is_refused()
    {
        var e = Assert.Throws<UserErrorException>(() => JobTopology.Resolve(4, 0, Torchrun(0, 2)));
        Assert.That(e!.Message, Does.Contain("--world-size 4").And.Contain("torchrun").And.Contain("= 2"));
        Assert.That(JobTopology.Resolve(2, 0, Torchrun(0, 2)).WorldSize, Is.EqualTo(2), "an agreeing --world-size is fine");
    }
}
