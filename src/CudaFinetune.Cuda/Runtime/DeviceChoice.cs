using CudaFinetune.Hosting;

namespace CudaFinetune.Cuda.Runtime;

/// <summary>
/// The one rule for which kernel device a choice names: <c>cuda</c> is GPU 0, <c>cuda-emulated</c> the kernel emulator,
/// <c>auto</c> GPU 0 where a driver sees one, else the emulator. (Backends are chosen by BackendFactory, whose
/// <c>auto</c> falls back to the CPU backend instead.)
/// </summary>
public static class DeviceChoice
{
    /// <summary>The names accepted.</summary>
    public static IReadOnlyList<string> Names { get; } = ["auto", "cuda", "cuda-emulated"];

    /// <summary>Whether a driver and at least one GPU are present.</summary>
    public static bool GpuPresent => CudaEnvironment.Probe().Gpus.Count > 0;

    /// <summary>Opens the device <paramref name="choice"/> names.</summary>
    public static IDevice Open(string choice) => choice switch
    {
        "cuda" => CudaDevice.Open(),
        "cuda-emulated" => EmulatedDevice.Open(),
        "auto" => GpuPresent ? CudaDevice.Open() : EmulatedDevice.Open(),
        _ => throw new ArgumentException($"unknown device '{choice}'; choose {string.Join(", ", Names)}", nameof(choice)),
    };

    /// <summary>
    /// Every device <paramref name="choice"/> covers, for checks that run on each (verify-kernels): <c>auto</c> is the
    /// emulator and, where there is one, the GPU.
    /// </summary>
    public static IReadOnlyList<Func<IDevice>> Each(string choice) => choice switch
    {
        "cuda" => [() => CudaDevice.Open()],
        "cuda-emulated" => [EmulatedDevice.Open],
        "auto" => GpuPresent ? [EmulatedDevice.Open, () => CudaDevice.Open()] : [EmulatedDevice.Open],
        _ => throw new ArgumentException($"unknown device '{choice}'; choose {string.Join(", ", Names)}", nameof(choice)),
    };
}
