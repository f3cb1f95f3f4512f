using System.Runtime.InteropServices;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>A device address as kernels receive it (a PTX <c>.u64</c> parameter).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct DevicePtr(ulong Address);

/// <summary>Grid and block of a one-dimensional launch, and the dynamic shared memory it needs.</summary>
public readonly record struct LaunchShape(int Blocks, int ThreadsPerBlock, int DynamicSharedBytes = 0);

/// <summary>
/// Runs a kernel entry with its arguments passed as an array of pointers to each argument —
/// exactly what <c>cuLaunchKernel</c> takes — so that launchers allocate nothing and box nothing.
/// Implemented by the CUDA driver runtime and by the emulator.
/// </summary>
public unsafe interface IKernelLauncher
{
    void Launch(string ptxModule, string entry, LaunchShape shape, void** arguments);
}

/// <summary>Marks a launcher method: the PTX entry it launches; a test checks its parameters against the entry's.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class KernelEntryAttribute(string module, string entry) : Attribute
{
    public string Module { get; } = module;
    public string Entry { get; } = entry;
}
