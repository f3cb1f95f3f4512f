using CudaFinetune.Backends;
using CudaFinetune.Backends.Cpu;
using CudaFinetune.Errors;
using CudaFinetune.Model;

namespace CudaFinetune.Hosting;

/// <summary>
/// The GPU backends as the factory sees them. CudaFinetune.Cuda provides them and installs itself with
/// <see cref="BackendFactory.Install"/> (this assembly does not reference it).
/// </summary>
public interface IAcceleratorProvider
{
    /// <summary>Whether a CUDA driver and at least one GPU are present.</summary>
    bool GpuPresent { get; }

    /// <summary>Why <paramref name="model"/> cannot train on these backends, or null when it can.</summary>
    string? Unsupported(LlamaConfig model);

    /// <summary>Opens "cuda" (on GPU <paramref name="ordinal"/>) or "cuda-emulated".</summary>
    IBackend Create(string device, int ordinal = 0);

    /// <summary>A new id for the ranks of one job to meet under (NCCL's unique id), made by the first rank on its backend.</summary>
    byte[] NewCollectiveId(IBackend backend);

    /// <summary>Joins rank <paramref name="rank"/> of <paramref name="worldSize"/> on <paramref name="backend"/>'s device; returns once every rank has joined.</summary>
    Distributed.IProcessGroup JoinCollective(IBackend backend, int worldSize, int rank, byte[] collectiveId);
}

/// <summary>Turns a <c>--device</c> value into a backend.</summary>
public static class BackendFactory
{
    private static IAcceleratorProvider? s_accelerators;

    /// <summary>Makes "cuda", "cuda-emulated" and the GPU choice of "auto" available (idempotent).</summary>
    public static void Install(IAcceleratorProvider accelerators) => s_accelerators = accelerators;

    /// <summary>The installed GPU backends, if any.</summary>
    public static IAcceleratorProvider? Accelerators => s_accelerators;

    /// <summary>
    /// "cpu"; "cuda" (a GPU) or "cuda-emulated" (our kernels on the emulator); "auto": cuda when a GPU is present
    /// and it can run <paramref name="model"/> (when given), else cpu.
    /// </summary>
    /// <param name="ordinal">the GPU to open ("cuda")</param>
    /// <param name="cpuThreads">worker threads of a CPU backend (default: one per processor)</param>
    public static IBackend Create(string device, LlamaConfig? model = null, int ordinal = 0, int? cpuThreads = null)
    {
        switch (device)
        {
            case "cpu":
                return new CpuBackend(threads: cpuThreads);
            case "auto":
                return s_accelerators is { GpuPresent: true } gpu && (model is null || gpu.Unsupported(model) is null)
                    ? gpu.Create("cuda", ordinal)
                    : new CpuBackend(threads: cpuThreads);
            case "cuda" or "cuda-emulated":
                var accelerators = s_accelerators
                    ?? throw new UserErrorException($"--device {device}: this build has no CUDA backend; use --device cpu (or auto)");
                if (model is not null && accelerators.Unsupported(model) is { } reason)
                {
                    throw new UserErrorException($"--device {device}: {reason}");
                }
                return accelerators.Create(device, ordinal);
            default:
                throw new UserErrorException($"unknown --device '{device}'; choose auto, cpu, cuda or cuda-emulated");
        }
    }
}
