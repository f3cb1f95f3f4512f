using CudaFinetune.Backends;
using CudaFinetune.Distributed;
using CudaFinetune.Errors;
using CudaFinetune.Tensors;

namespace CudaFinetune.Hosting;

/// <summary>
/// Opens the process groups of this process's ranks: for the CPU backend, thread ranks sharing memory in one process or
/// one rank per launched process over TCP (<see cref="TcpProcessGroup"/>); NCCL for GPUs (thread ranks of one process, or processes that meet at the launcher's TCP rendezvous, which also
/// hands every process the run's id). All ranks of a job agree on <see cref="RunId"/>, from which checkpoint ids derive.
/// </summary>
public sealed class ProcessGroups
{
    private ProcessGroups(IProcessGroup[]? groups, byte[] runId)
    {
        Groups = groups;
        RunId = runId;
    }

    /// <summary>One group per local rank, in local order; null for a job of one rank without a launcher.</summary>
    public IReadOnlyList<IProcessGroup>? Groups { get; }

    /// <summary>16 bytes the whole job shares.</summary>
    public byte[] RunId { get; }

    /// <param name="job">the job and this process's place in it</param>
    /// <param name="backends">one backend per local rank (the device each rank's tensors live on)</param>
    /// <param name="timeout">how long a rendezvous or a collective waits for every rank</param>
    public static ProcessGroups Open(JobTopology job, IReadOnlyList<IBackend> backends, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(backends);
        if (backends.Count != job.LocalRanks)
        {
            throw new ArgumentException($"{backends.Count} backends for {job.LocalRanks} local ranks", nameof(backends));
        }
        byte[] runId = Guid.NewGuid().ToByteArray();
        if (job.WorldSize == 1 && job.Launch is null)
        {
            return new ProcessGroups(null, runId);
        }
        if (backends[0].Device.Kind == DeviceKind.Cpu) // tensors in host memory: the ranks exchange them themselves
        {
            if (job.Launch is { } cpuLaunch)
            {
                if (job.LocalRanks > 1)
                {
                    throw new UserErrorException($"--nproc-per-node {job.LocalRanks} under {cpuLaunch.Launcher}: on the CPU each launched process is one rank (start more processes instead)");
                }
                var tcp = TcpProcessGroup.Join(cpuLaunch, job.ProcessRank == 0 ? runId : null, timeout);
                return new ProcessGroups([tcp], tcp.Payload);
            }
            return new ProcessGroups(ThreadProcessGroup.Create(job.WorldSize, timeout), runId);
        }
        var accelerators = BackendFactory.Accelerators
            ?? throw new UserErrorException("multi-GPU training needs the CUDA backend, which this build lacks");
        byte[] payload = [];
        if (job.ProcessRank == 0)
        {
            payload = [.. runId, .. accelerators.NewCollectiveId(backends[0])];
        }
        if (job.Launch is { } launch)
        {
            payload = TcpRendezvous.Exchange(launch, payload, timeout);
        }
        runId = payload[..16];
        byte[] collectiveId = payload[16..];
        // NCCL's communicator init returns once every rank has joined: the local ranks join at once, each on its thread.
        var groups = new IProcessGroup[job.LocalRanks];
        Parallel.For(0, job.LocalRanks, new ParallelOptions { MaxDegreeOfParallelism = job.LocalRanks },
            local => groups[local] = accelerators.JoinCollective(backends[local], job.WorldSize, job.FirstRank + local, collectiveId));
        return new ProcessGroups(groups, runId);
    }
}
