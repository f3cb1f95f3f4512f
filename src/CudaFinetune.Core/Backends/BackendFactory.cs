using CudaFinetune.Backends.Cpu;
using CudaFinetune.Errors;

namespace CudaFinetune.Backends;

/// <summary>Turns a <c>--device</c> value into a backend.</summary>
public static class BackendFactory
{
    /// <summary>
    /// "cpu" and "auto" give the CPU backend (auto will pick cuda once the CUDA backend exists and
    /// finds a GPU); "cuda" and "cuda-emulated" are refused with a clear message until then.
    /// </summary>
    public static IBackend Create(string device) => device switch
    {
        "cpu" or "auto" => new CpuBackend(),
        "cuda" or "cuda-emulated" => throw new UserErrorException($"--device {device}: the CUDA backend is not built yet; use --device cpu (or auto)"),
        _ => throw new UserErrorException($"unknown --device '{device}'; choose auto, cpu, cuda or cuda-emulated"),
    };
}
