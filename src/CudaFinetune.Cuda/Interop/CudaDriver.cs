using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: DisableRuntimeMarshalling]

namespace CudaFinetune.Cuda.Interop;

/// <summary>A CUDA driver API status (CUresult); 0 is success.</summary>
internal enum CuResult
{
    Success = 0,
    OutOfMemory = 2,
    NotInitialized = 3,
    NotReady = 600,
    NoDevice = 100,
}

/// <summary>A device ordinal as the driver API hands it out (CUdevice).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CuDevice(int Ordinal);

/// <summary>A context (CUcontext).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CuContext(IntPtr Handle);

/// <summary>A loaded module (CUmodule).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CuModule(IntPtr Handle);

/// <summary>A kernel entry of a module (CUfunction).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CuFunction(IntPtr Handle);

/// <summary>A stream (CUstream); default(CuStream) is the legacy default stream.</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CuStream(IntPtr Handle);

/// <summary>An event (CUevent).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CuEvent(IntPtr Handle);

/// <summary>JIT options of cuModuleLoadDataEx (CUjit_option values) that surface the compiler's logs.</summary>
internal enum CuJitOption
{
    InfoLogBuffer = 3,
    InfoLogBufferSizeBytes = 4,
    ErrorLogBuffer = 5,
    ErrorLogBufferSizeBytes = 6,
}

/// <summary>Function attributes (CUfunction_attribute values) the runtime reads or sets.</summary>
internal enum CuFunctionAttribute
{
    MaxThreadsPerBlock = 0,
    SharedSizeBytes = 1,
    NumRegisters = 4,
    MaxDynamicSharedSizeBytes = 8,
}

/// <summary>Device attributes read by <see cref="CudaDriver.DeviceGetAttribute"/> (CUdevice_attribute values).</summary>
internal enum CuDeviceAttribute
{
    MultiprocessorCount = 16,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
}

/// <summary>
/// The CUDA driver API (libcuda.so.1) as far as the engine uses it: initialisation, the driver
/// version, devices and their properties, the primary context, device and page-locked memory,
/// synchronous and asynchronous copies, streams, events and timing, modules loaded from PTX with
/// the JIT's logs, function attributes (dynamic shared memory opt-in) and kernel launches. Versioned entry points
/// (<c>cuDeviceTotalMem_v2</c>) are named explicitly; every call returns a <see cref="CuResult"/>
/// to be checked with <see cref="CudaException.ThrowIfFailed"/>.
/// </summary>
internal static unsafe partial class CudaDriver
{
    static CudaDriver() => LibraryResolver.Register();

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuInit")]
    public static partial CuResult Init(uint flags);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDriverGetVersion")]
    public static partial CuResult DriverGetVersion(int* version);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDeviceGetCount")]
    public static partial CuResult DeviceGetCount(int* count);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDeviceGet")]
    public static partial CuResult DeviceGet(CuDevice* device, int ordinal);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDeviceGetName")]
    public static partial CuResult DeviceGetName(byte* name, int length, CuDevice device);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDeviceTotalMem_v2")]
    public static partial CuResult DeviceTotalMem(nuint* bytes, CuDevice device);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDeviceGetAttribute")]
    public static partial CuResult DeviceGetAttribute(int* value, CuDeviceAttribute attribute, CuDevice device);

    // ---- primary context ---------------------------------------------------------------
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDevicePrimaryCtxRetain")]
    public static partial CuResult DevicePrimaryCtxRetain(CuContext* context, CuDevice device);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDevicePrimaryCtxRelease_v2")]
    public static partial CuResult DevicePrimaryCtxRelease(CuDevice device);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuCtxSetCurrent")]
    public static partial CuResult CtxSetCurrent(CuContext context);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuCtxSynchronize")]
    public static partial CuResult CtxSynchronize();

    // ---- memory ----------------------------------------------------------------------------
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemAlloc_v2")]
    public static partial CuResult MemAlloc(ulong* devicePointer, nuint bytes);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemFree_v2")]
    public static partial CuResult MemFree(ulong devicePointer);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemGetInfo_v2")]
    public static partial CuResult MemGetInfo(nuint* free, nuint* total);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemsetD8_v2")]
    public static partial CuResult MemsetD8(ulong devicePointer, byte value, nuint count);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemsetD8Async")]
    public static partial CuResult MemsetD8Async(ulong devicePointer, byte value, nuint count, CuStream stream);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemcpyHtoD_v2")]
    public static partial CuResult MemcpyHtoD(ulong destination, void* source, nuint bytes);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemcpyDtoH_v2")]
    public static partial CuResult MemcpyDtoH(void* destination, ulong source, nuint bytes);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemcpyDtoD_v2")]
    public static partial CuResult MemcpyDtoD(ulong destination, ulong source, nuint bytes);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemcpyDtoDAsync_v2")]
    public static partial CuResult MemcpyDtoDAsync(ulong destination, ulong source, nuint bytes, CuStream stream);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemcpyHtoDAsync_v2")]
    public static partial CuResult MemcpyHtoDAsync(ulong destination, void* source, nuint bytes, CuStream stream);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemcpyDtoHAsync_v2")]
    public static partial CuResult MemcpyDtoHAsync(void* destination, ulong source, nuint bytes, CuStream stream);

    /// <summary>Page-locked host memory (flags: CU_MEMHOSTALLOC_*; 0 = portable to this context only).</summary>
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemHostAlloc")]
    public static partial CuResult MemHostAlloc(void** pointer, nuint bytes, uint flags);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemFreeHost")]
    public static partial CuResult MemFreeHost(void* pointer);

    // ---- streams and events -------------------------------------------------------------------
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuStreamCreate")]
    public static partial CuResult StreamCreate(CuStream* stream, uint flags);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuStreamDestroy_v2")]
    public static partial CuResult StreamDestroy(CuStream stream);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuStreamSynchronize")]
    public static partial CuResult StreamSynchronize(CuStream stream);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuStreamWaitEvent")]
    public static partial CuResult StreamWaitEvent(CuStream stream, CuEvent @event, uint flags);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuEventCreate")]
    public static partial CuResult EventCreate(CuEvent* @event, uint flags);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuEventDestroy_v2")]
    public static partial CuResult EventDestroy(CuEvent @event);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuEventRecord")]
    public static partial CuResult EventRecord(CuEvent @event, CuStream stream);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuEventQuery")]
    public static partial CuResult EventQuery(CuEvent @event);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuEventSynchronize")]
    public static partial CuResult EventSynchronize(CuEvent @event);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuEventElapsedTime")]
    public static partial CuResult EventElapsedTime(float* milliseconds, CuEvent start, CuEvent end);

    // ---- modules and launches -------------------------------------------------------------------
    /// <summary>Loads (JIT-compiles) a NUL-terminated PTX image; the options carry the log buffers.</summary>
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuModuleLoadDataEx")]
    public static partial CuResult ModuleLoadDataEx(CuModule* module, void* image, uint optionCount, CuJitOption* options, void** optionValues);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuModuleUnload")]
    public static partial CuResult ModuleUnload(CuModule module);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuModuleGetFunction")]
    public static partial CuResult ModuleGetFunction(CuFunction* function, CuModule module, byte* name);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuFuncGetAttribute")]
    public static partial CuResult FuncGetAttribute(int* value, CuFunctionAttribute attribute, CuFunction function);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuFuncSetAttribute")]
    public static partial CuResult FuncSetAttribute(CuFunction function, CuFunctionAttribute attribute, int value);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuLaunchKernel")]
    public static partial CuResult LaunchKernel(CuFunction function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, CuStream stream, void** parameters, void** extra);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuGetErrorString")]
    public static partial CuResult GetErrorString(CuResult error, byte** text);

    /// <summary>The driver's description of a status, or its number when the driver cannot say.</summary>
    public static string Describe(CuResult result)
    {
        byte* text = null;
        return GetErrorString(result, &text) == CuResult.Success && text != null
            ? $"{Marshal.PtrToStringUTF8((IntPtr)text)} (CUresult {(int)result})"
            : $"CUresult {(int)result}";
    }
}

/// <summary>A CUDA driver call that failed: the call as written, and the driver's message.</summary>
internal sealed class CudaException : Exception
{
    public CudaException(string message)
        : base(message)
    {
    }

    public CudaException()
    {
    }

    public CudaException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public static void ThrowIfFailed(CuResult result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result != CuResult.Success)
        {
            throw new CudaException($"{call} failed: {CudaDriver.Describe(result)}");
        }
    }
}
