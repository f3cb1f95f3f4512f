using System.Runtime.InteropServices;
using CudaFinetune.Cuda.Kernels;

namespace CudaFinetune.Cuda.Runtime;

/// <summary>
/// Runs our kernels on the CPU through native/cuemu (libcuemu.so, built with the PTX from the very
/// same kernels/*.cu as host C++): every CUDA thread a fiber, blocks one after another. "Device"
/// pointers are host addresses. Launches take the same <c>void**</c> as <c>cuLaunchKernel</c>.
/// Slow, and exact about barriers and warp shuffles: for testing kernels where there is no GPU.
/// </summary>
public sealed unsafe class EmulatedDevice : IKernelLauncher, IDisposable
{
    private const string LibraryFile = "libcuemu.so";
    private readonly IntPtr _library;
    private readonly delegate* unmanaged<IntPtr, int, int, int, void**, int> _launch;
    private readonly Dictionary<string, IntPtr> _entries = new(StringComparer.Ordinal);

    private EmulatedDevice(IntPtr library)
    {
        _library = library;
        _launch = (delegate* unmanaged<IntPtr, int, int, int, void**, int>)NativeLibrary.GetExport(library, "cuemu_launch");
    }

    /// <summary>Loads the emulator library from beside this assembly.</summary>
    public static EmulatedDevice Open()
    {
        string path = Path.Combine(AppContext.BaseDirectory, LibraryFile);
        if (!NativeLibrary.TryLoad(path, out IntPtr library))
        {
            throw new DllNotFoundException($"the kernel emulator {path} is missing or does not load; it is built with the kernels by 'dotnet build' (cmake, clang and a C++ compiler)");
        }
        return new EmulatedDevice(library);
    }

    public void Launch(string ptxModule, string entry, LaunchShape shape, void** arguments)
    {
        if (!_entries.TryGetValue(entry, out IntPtr function))
        {
            function = NativeLibrary.TryGetExport(_library, "cuemu_" + entry, out IntPtr found)
                ? found
                : throw new EntryPointNotFoundException($"the emulator has no entry cuemu_{entry} (module {ptxModule}): the kernel lacks CF_EMULATOR_ENTRY({entry})");
            _entries[entry] = function;
        }
        if (_launch(function, shape.Blocks, shape.ThreadsPerBlock, shape.DynamicSharedBytes, arguments) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(shape), shape, "the emulator cannot run this launch shape (threads 1..1024; dynamic shared memory is not emulated yet)");
        }
    }

    public void Dispose() => NativeLibrary.Free(_library);
}
