using System.Collections;
using System.Globalization;
using CudaFinetune.Errors;

namespace CudaFinetune.Distributed;

/// <summary>
/// Where this process sits in a multi-process job, as a launcher describes it in the environment: torchrun
/// (<c>RANK</c>, <c>WORLD_SIZE</c>, <c>LOCAL_RANK</c>), Slurm's srun (<c>SLURM_PROCID</c>, <c>SLURM_NTASKS</c>,
/// <c>SLURM_LOCALID</c>) or Open MPI's mpirun (<c>OMPI_COMM_WORLD_RANK</c>, <c>_SIZE</c>, <c>_LOCAL_RANK</c>); the
/// rendezvous is <c>MASTER_ADDR</c>:<c>MASTER_PORT</c> (port 29500 when unset, as torchrun's default; torchrun's own
/// agent store occupies MASTER_PORT when it sets TORCHELASTIC_USE_AGENT_STORE, and then ours is MASTER_PORT + 1).
/// </summary>
public sealed record LaunchEnvironment(string Launcher, int Rank, int WorldSize, int LocalRank, string MasterAddress, int MasterPort)
{
    public const int DefaultMasterPort = 29500;

    /// <summary>Overrides the rendezvous port (by default MASTER_PORT, or MASTER_PORT + 1 under torchrun, whose agent holds MASTER_PORT).</summary>
    public const string RendezvousPortVariable = "CUDAFINETUNE_RENDEZVOUS_PORT";

    /// <summary>The launch this process's environment describes, or null when no launcher set one (a single process).</summary>
    public static LaunchEnvironment? FromProcess() => From(Environment.GetEnvironmentVariables());

    /// <summary>
    /// The launch <paramref name="environment"/> describes, or null when it names none; a partial or inconsistent
    /// description is a <see cref="UserErrorException"/> that names the variable.
    /// </summary>
    public static LaunchEnvironment? From(IDictionary environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        string? Get(string name) => environment[name] as string is { Length: > 0 } value ? value : null;
        (string Launcher, string Rank, string Size, string Local)? names =
            Get("RANK") is not null || Get("WORLD_SIZE") is not null ? ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK")
            : Get("OMPI_COMM_WORLD_RANK") is not null ? ("mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK")
            : Get("SLURM_PROCID") is not null && Get("SLURM_NTASKS") is not null ? ("srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
            : null;
        if (names is not { } n)
        {
            return null;
        }
        int Number(string name, int? fallback = null)
        {
            string? text = Get(name);
            if (text is null)
            {
                return fallback ?? throw new UserErrorException($"{n.Launcher} launch: {name} is not set");
            }
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value)
                ? value
                : throw new UserErrorException($"{n.Launcher} launch: {name}='{text}' is not a non-negative integer");
        }
        int rank = Number(n.Rank), worldSize = Number(n.Size), localRank = Number(n.Local, fallback: 0);
        if (worldSize < 1 || rank >= worldSize)
        {
            throw new UserErrorException($"{n.Launcher} launch: rank {rank} ({n.Rank}) does not fit world size {worldSize} ({n.Size})");
        }
        string master = Get("MASTER_ADDR") ?? (worldSize == 1 ? "127.0.0.1" : throw new UserErrorException(
            $"{n.Launcher} launch of {worldSize} ranks: MASTER_ADDR is not set; set it to rank 0's host (with Slurm: "
            + "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1))"));
        int port = Number("MASTER_PORT", DefaultMasterPort);
        if (Get(RendezvousPortVariable) is not null)
        {
            port = Number(RendezvousPortVariable);
        }
        else if (n.Launcher == "torchrun" && string.Equals(Get("TORCHELASTIC_USE_AGENT_STORE"), "true", StringComparison.OrdinalIgnoreCase))
        {
            port++; // torchrun's agent serves its own TCP store on MASTER_PORT; ours listens beside it
        }
        if (port is < 1 or > 65535)
        {
            throw new UserErrorException($"the rendezvous port {port} (MASTER_PORT, or {RendezvousPortVariable}) is not a TCP port");
        }
        return new LaunchEnvironment(n.Launcher, rank, worldSize, localRank, master, port);
    }
}
