using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: DisableRuntimeMarshalling]

namespace CudaFinetune.Cuda.Interop;

/// <summary>A CUDA driver API status (CUresult); 0 is success.</summary>
internal enum CuResult
{
    Success = 0,
    NotInitialized = 3,
    NoDevice = 100,
}

/// <summary>A device ordinal as the driver API hands it out (CUdevice).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CuDevice(int Ordinal);

/// <summary>Device attributes read by <see cref="CudaDriver.DeviceGetAttribute"/> (CUdevice_attribute values).</summary>
internal enum CuDeviceAttribute
{
    MultiprocessorCount = 16,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
}

/// <summary>
/// The CUDA driver API (libcuda.so.1) as far as the engine uses it so far: initialisation, the
/// driver version, devices and their properties, error strings. Versioned entry points
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
