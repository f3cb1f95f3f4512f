using System.Runtime.InteropServices;

namespace CudaFinetune.Cuda.Kernels;

/// <summary>A device address as kernels receive it (a PTX <c>.u64</c> parameter).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct DevicePtr(ulong Address)
{
    public static DevicePtr Null => default;

    /// <summary>The address <paramref name="bytes"/> further on.</summary>
    public DevicePtr Offset(long bytes) => new(Address + (ulong)bytes);
}

/// <summary>
/// A launch: a grid of <paramref name="Blocks"/> × <paramref name="BlocksY"/> × <paramref name="BlocksZ"/>
/// one-dimensional blocks of <paramref name="ThreadsPerBlock"/> threads, and the dynamic shared memory each block gets.
/// </summary>
public readonly record struct LaunchShape(int Blocks, int ThreadsPerBlock, int DynamicSharedBytes = 0, int BlocksY = 1, int BlocksZ = 1)
{
    /// <summary>The most dynamic shared memory a block may ask for (an H100's opt-in limit, 227 KiB).</summary>
    public const int MaxDynamicSharedBytes = 227 << 10;

    /// <summary>Throws when no GPU could run this shape, naming what is wrong.</summary>
    public void Check()
    {
        if (Blocks < 0 || BlocksY is < 1 or > 65535 || BlocksZ is < 1 or > 65535 || ThreadsPerBlock is < 1 or > 1024
            || DynamicSharedBytes is < 0 or > MaxDynamicSharedBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(LaunchShape), this,
                $"a launch needs blocks >= 0, BlocksY and BlocksZ in 1..65535, 1..1024 threads per block and 0..{MaxDynamicSharedBytes} bytes of dynamic shared memory");
        }
    }
}

/// <summary>
/// Runs a kernel entry with its arguments passed as an array of pointers to each argument —
/// exactly what <c>cuLaunchKernel</c> takes — so that launchers allocate nothing and box nothing.
/// Implemented by the CUDA driver runtime and by the emulator.
/// </summary>
public unsafe interface IKernelLauncher
{
    void Launch(string ptxModule, string entry, LaunchShape shape, void** arguments);
}

/// <summary>
/// A launcher that also lends device memory for the length of a few launches: what the launcher of a kernel in stages takes,
/// the stages passing data through the scratch (a deterministic two-stage reduction's partials). A device lends it from its
/// caching allocator (Runtime's <c>IDevice</c>). Launches and copies run in stream order, so scratch returned right after
/// the launches that use it may be lent again at once: later work cannot overtake them.
/// </summary>
public interface IScratchLauncher : IKernelLauncher
{
    /// <summary>At least <paramref name="bytes"/> of device memory, 256-byte aligned, contents undefined, until <see cref="ReturnScratch"/>.</summary>
    DevicePtr RentScratch(long bytes);

    /// <summary>Gives back what <see cref="RentScratch"/> lent for <paramref name="bytes"/>.</summary>
    void ReturnScratch(DevicePtr scratch, long bytes);
}

/// <summary>
/// Marks a launcher method: a PTX entry it launches; a test checks its parameters against the entry's. A launcher of a
/// kernel built for fp32 and bf16 carries one for each entry and takes the element type as its first argument after the
/// launcher (<see cref="DTypeEntries"/>).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class KernelEntryAttribute(string module, string entry) : Attribute
{
    public string Module { get; } = module;
    public string Entry { get; } = entry;
}

/// <summary>The launchers' checks of what a kernel's memory instructions need, naming the argument that breaks them.</summary>
internal static class KernelArguments
{
    /// <summary>
    /// <paramref name="pointer"/> is 16-byte aligned, as cp.async of 16 bytes (and ldmatrix's rows, in the shared tiles it fills)
    /// needs: on a GPU a misaligned address is a fault in the middle of the kernel, on the emulator a trap.
    /// </summary>
    public static void Aligned16(string kernel, DevicePtr pointer, string name)
    {
        if (pointer.Address % 16 != 0)
        {
            throw new ArgumentException(
                $"{kernel} copies {name} into shared memory in 16-byte pieces (cp.async), which needs a 16-byte-aligned address; {name} is 0x{pointer.Address:x}, {pointer.Address % 16} bytes past a 16-byte boundary",
                name);
        }
    }

    /// <summary><paramref name="size"/> elements of bf16 make rows of whole 16-byte pieces: a positive multiple of 8.</summary>
    public static void MultipleOf8(string kernel, int size, string name)
    {
        if (size <= 0 || size % 8 != 0)
        {
            throw new ArgumentException(
                $"{kernel} copies rows of {name} bf16 elements in 16-byte pieces (cp.async), so {name} must be a positive multiple of 8; it is {size}", name);
        }
    }
}
