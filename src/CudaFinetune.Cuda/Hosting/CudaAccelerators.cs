using CudaFinetune.Backends;
using CudaFinetune.Cuda.Backend;
using CudaFinetune.Cuda.Kernels;
using CudaFinetune.Cuda.Runtime;
using CudaFinetune.Distributed;
using CudaFinetune.Errors;
using CudaFinetune.Hosting;
using CudaFinetune.Model;

namespace CudaFinetune.Cuda.Hosting;

/// <summary>Offers <see cref="CudaBackend"/> to <see cref="BackendFactory"/>: call <see cref="Install"/> once at start-up.</summary>
public sealed class CudaAccelerators : IAcceleratorProvider
{
    private readonly Lazy<bool> _gpuPresent = new(() =>
    {
        var report = CudaEnvironment.Probe();
        return report.Driver.Found && report.DriverError is null && report.Gpus.Count > 0;
    });

    private CudaAccelerators()
    {
    }

    public static void Install() => BackendFactory.Install(new CudaAccelerators());

    public bool GpuPresent => _gpuPresent.Value;

    public string? Unsupported(LlamaConfig model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return AttentionKernels.Supports(model.HeadSize)
            ? null
            : $"the attention kernels take head sizes 32, 64 and 128; this model's is {model.HeadSize} (use --device cpu)";
    }

    public IBackend Create(string device, int ordinal = 0) => device switch
    {
        "cuda" => CudaBackend.OpenGpu(ordinal),
        "cuda-emulated" => CudaBackend.OpenEmulated(),
        _ => throw new ArgumentException($"not a CUDA device: '{device}'", nameof(device)),
    };

    public byte[] NewCollectiveId(IBackend backend)
    {
        RequireGpu(backend);
        return NcclProcessGroup.CreateUniqueId();
    }

    public IProcessGroup JoinCollective(IBackend backend, int worldSize, int rank, byte[] collectiveId)
        => NcclProcessGroup.Join(RequireGpu(backend), worldSize, rank, collectiveId);

    private static CudaBackend RequireGpu(IBackend backend) => backend is CudaBackend { Kernels: CudaDevice } cuda
        ? cuda
        : throw new UserErrorException($"several ranks need --device cpu (thread ranks) or --device cuda (NCCL); the {backend.Name} backend has no collectives");
}
