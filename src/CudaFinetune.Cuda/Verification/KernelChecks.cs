using CudaFinetune.Cuda.Runtime;

namespace CudaFinetune.Cuda.Verification;

/// <summary>A kernel (or a family's entries together) run on fresh random inputs and compared with its reference.</summary>
public sealed record KernelCheck(string Name, string Family, Func<IDevice, Random, IReadOnlyList<KernelCheckResult>> Run);

/// <summary>
/// Every kernel check, for <c>CudaFinetune verify-kernels</c> and the kernel tests: each kernel family
/// against the CPU backend, and each device primitive (native/cuemu/selftest.cu) against a scalar reference.
/// </summary>
public static class KernelChecks
{
    public static IReadOnlyList<KernelCheck> All { get; } = [.. RmsNormChecks.All, .. ElementwiseChecks.All, .. LayerChecks.All, .. AttentionChecks.All, .. LoraChecks.All, .. PrimitiveChecks.All];

    public static KernelCheck Find(string name)
        => All.FirstOrDefault(c => c.Name == name) ?? throw new ArgumentException($"no kernel check '{name}' (checks: {string.Join(", ", All.Select(c => c.Name))})", nameof(name));
}
