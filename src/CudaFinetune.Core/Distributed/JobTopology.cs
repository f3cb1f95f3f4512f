using CudaFinetune.Errors;

namespace CudaFinetune.Distributed;

/// <summary>
/// The ranks of a data-parallel job and which of them this process runs: <see cref="ProcessCount"/> processes (one
/// without a launcher) of <see cref="LocalRanks"/> ranks each, on threads; this process runs global ranks
/// [<see cref="FirstRank"/>, FirstRank + LocalRanks). Local rank l of a process uses GPU LOCAL_RANK × LocalRanks + l.
/// </summary>
public sealed record JobTopology(int WorldSize, int LocalRanks, int ProcessRank, int ProcessCount, LaunchEnvironment? Launch)
{
    /// <summary>One rank in one process: no data parallelism.</summary>
    public static JobTopology Alone { get; } = new(1, 1, 0, 1, null);

    public int FirstRank => ProcessRank * LocalRanks;

    /// <summary>Whether this process writes the run's own files (run.json, metrics, outputs) and commits checkpoints.</summary>
    public bool IsFirstProcess => ProcessRank == 0;

    /// <summary>The GPU ordinal of local rank <paramref name="local"/>.</summary>
    public int DeviceOrdinal(int local) => (Launch?.LocalRank ?? 0) * LocalRanks + local;

    /// <summary>
    /// The job that <c>--world-size</c> (1: not asked), <c>--nproc-per-node</c> (0: not given) and the launcher's
    /// environment describe. Without a launcher this process runs every rank (--world-size or --nproc-per-node of them);
    /// under one, each launched process runs --nproc-per-node ranks (default 1) and the world is WORLD_SIZE × that.
    /// </summary>
    public static JobTopology Resolve(int worldSize, int nprocPerNode, LaunchEnvironment? launch)
    {
        if (worldSize < 1)
        {
            throw new UserErrorException($"--world-size must be positive, got {worldSize}");
        }
        if (nprocPerNode < 0)
        {
            throw new UserErrorException($"--nproc-per-node must be positive, got {nprocPerNode}");
        }
        if (launch is null)
        {
            if (nprocPerNode > 0 && worldSize > 1 && nprocPerNode != worldSize)
            {
                throw new UserErrorException($"--world-size {worldSize} and --nproc-per-node {nprocPerNode} disagree: without a launcher (torchrun, srun, mpirun) this one process runs all ranks; give one of them");
            }
            int ranks = nprocPerNode > 0 ? nprocPerNode : worldSize;
            return ranks == 1 ? Alone : new JobTopology(ranks, ranks, 0, 1, null);
        }
        int local = nprocPerNode > 0 ? nprocPerNode : 1;
        int world = checked(launch.WorldSize * local);
        if (worldSize > 1 && worldSize != world)
        {
            throw new UserErrorException($"--world-size {worldSize} does not match the {launch.Launcher} launch: {launch.WorldSize} processes × {local} rank(s) each (--nproc-per-node) = {world}");
        }
        return new JobTopology(world, local, launch.Rank, launch.WorldSize, launch);
    }
}
