using System.Runtime.InteropServices;
using CudaFinetune.Cuda.Kernels;

namespace CudaFinetune.Cuda.Runtime;

/// <summary>
/// Runs our kernels on the CPU through native/cuemu (libcuemu.so, built with the PTX from the very
/// same kernels/*.cu as host C++): every CUDA thread a fiber, blocks spread over the cores. "Device"
/// memory is host memory, so device pointers are host addresses. Launches take the same
/// <c>void**</c> as <c>cuLaunchKernel</c> and are synchronous. Slow, and exact about barriers, warp
/// collectives and tensor-core fragments: for testing kernels where there is no GPU.
/// </summary>
public sealed unsafe class EmulatedDevice : IDevice
{
    private const string LibraryFile = "libcuemu.so";
    private const nuint Alignment = 256; // what cuMemAlloc guarantees

    private readonly delegate* unmanaged<IntPtr, int, int, int, int, int, void**, int> _launch;
    private readonly delegate* unmanaged<byte*> _lastError;
    private readonly IntPtr _library;
    private readonly Dictionary<string, IntPtr> _entries = new(StringComparer.Ordinal);

    private EmulatedDevice(IntPtr library)
    {
        _library = library;
        _launch = (delegate* unmanaged<IntPtr, int, int, int, int, int, void**, int>)NativeLibrary.GetExport(library, "cuemu_launch");
        _lastError = (delegate* unmanaged<byte*>)NativeLibrary.GetExport(library, "cuemu_last_error");
        Memory = new DeviceAllocator(this);
    }

    public string Name => "the kernel emulator";

    public DeviceAllocator Memory { get; }

    /// <summary>
    /// Loads the emulator library (it stays loaded for the process: its worker threads live in it). It is looked for as the
    /// runtime looks for a package's native asset: in the directories the app's deps.json names (bin/.../runtimes/linux-x64/native/
    /// of a framework-dependent app restored from the CudaFinetune.Cuda package) and beside this assembly; then at
    /// <see cref="FallbackPaths"/>, for hosts that have no deps.json entry for it.
    /// </summary>
    public static EmulatedDevice Open()
    {
        if (NativeLibrary.TryLoad(LibraryFile, typeof(EmulatedDevice).Assembly, DllImportSearchPath.AssemblyDirectory, out IntPtr library))
        {
            return new EmulatedDevice(library);
        }
        var tried = new List<string> { $"{LibraryFile} by name (the native asset folders in the app's deps.json, the CudaFinetune.Cuda assembly's folder, LD_LIBRARY_PATH, the system folders)" };
        foreach (string path in FallbackPaths())
        {
            if (!File.Exists(path))
            {
                tried.Add($"{path} (no such file)");
            }
            else if (NativeLibrary.TryLoad(path, out library))
            {
                return new EmulatedDevice(library);
            }
            else
            {
                tried.Add($"{path} (exists but does not load: wrong architecture or missing dependencies)");
            }
        }
        throw new DllNotFoundException($"the kernel emulator {LibraryFile} is missing or does not load; it is built with the kernels by 'dotnet build' (cmake, clang and a C++ compiler), "
            + $"and the CudaFinetune.Cuda package carries it for linux-x64. Looked for:{Environment.NewLine}    {string.Join(Environment.NewLine + "    ", tried)}");
    }

    /// <summary>
    /// Where the library is looked for by path: beside the app (this repository's builds, a RID-specific or NativeAOT
    /// publish), then in the app's runtimes/linux-x64/native/ folder, where NuGet puts the package's native asset.
    /// </summary>
    internal static IReadOnlyList<string> FallbackPaths() =>
    [
        Path.Combine(AppContext.BaseDirectory, LibraryFile),
        Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", LibraryFile),
    ];

    public void Launch(string ptxModule, string entry, LaunchShape shape, void** arguments)
    {
        shape.Check();
        if (!_entries.TryGetValue(entry, out IntPtr function))
        {
            function = NativeLibrary.TryGetExport(_library, "cuemu_" + entry, out IntPtr found)
                ? found
                : throw new EntryPointNotFoundException($"the emulator has no entry cuemu_{entry} (module {ptxModule}): the kernel lacks CF_EMULATOR_ENTRY({entry})");
            _entries[entry] = function;
        }
        if (_launch(function, shape.Blocks, shape.BlocksY, shape.BlocksZ, shape.ThreadsPerBlock, shape.DynamicSharedBytes, arguments) != 0)
        {
            throw new EmulatedKernelException($"{ptxModule}/{entry} failed on the emulator: {Marshal.PtrToStringUTF8((IntPtr)_lastError())}");
        }
    }

    public bool TryAllocate(nuint bytes, out DevicePtr address)
    {
        void* memory = NativeMemory.AlignedAlloc(Math.Max(bytes, 1), Alignment);
        address = new DevicePtr((ulong)memory);
        return memory != null;
    }

    public void Free(DevicePtr address) => NativeMemory.AlignedFree((void*)address.Address);

    public void CopyToDevice(DevicePtr destination, void* source, nuint bytes) => Buffer.MemoryCopy(source, (void*)destination.Address, bytes, bytes);

    public void CopyToHost(void* destination, DevicePtr source, nuint bytes) => Buffer.MemoryCopy((void*)source.Address, destination, bytes, bytes);

    public void CopyWithinDevice(DevicePtr destination, DevicePtr source, nuint bytes) => Buffer.MemoryCopy((void*)source.Address, (void*)destination.Address, bytes, bytes);

    public void Fill(DevicePtr destination, byte value, nuint bytes) => NativeMemory.Fill((void*)destination.Address, bytes, value);

    /// <summary>Launches are synchronous here, so there is nothing to wait for.</summary>
    public void Synchronize()
    {
    }

    public void Dispose() => Memory.ReleaseAll();
}

/// <summary>A kernel broke CUDA's rules on the emulator (a deadlocked barrier, a warp collective with lanes missing): a kernel bug.</summary>
public sealed class EmulatedKernelException : Exception
{
    public EmulatedKernelException()
    {
    }

    public EmulatedKernelException(string message)
        : base(message)
    {
    }

    public EmulatedKernelException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
